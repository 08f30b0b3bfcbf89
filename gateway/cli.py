"""The `ovn-nb-gateway` command line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from gateway import sandbox
from gateway.config import ConfigError, Settings, from_env
from gateway.schemas.audit import KINDS as AUDIT_KINDS

DEFAULT_SANDBOX = Path(os.environ.get("GATEWAY_SANDBOX_DIR", Path.home() / ".ovn-nb-gateway"))


# gunicorn's own limits, before a request reaches the app (its defaults, made explicit):
# a longer request line is 414, a longer header field or more of them 431.
LIMIT_REQUEST_LINE = 4094
LIMIT_REQUEST_FIELD_SIZE = 8190
LIMIT_REQUEST_FIELDS = 100


def write_problem(sock: Any, status: int, reason: str, message: str) -> None:
    """What gunicorn answers for a request it refuses itself (414, 431, 400 for one it
    cannot parse): a problem document with a request id, like every other error, in place
    of its HTML page. There is no request path to name, so `instance` is absent."""
    import uuid

    from gunicorn import util

    request_id = uuid.uuid4().hex
    body = json.dumps({"type": "about:blank", "title": reason, "status": status,
                       "detail": message[:300] or reason, "request_id": request_id,
                       "errors": {}}, sort_keys=True).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/problem+json\r\nContent-Length: {len(body)}\r\n"
            f"X-Request-ID: {request_id}\r\n\r\n").encode("latin-1")
    util.write_nonblock(sock, head + body)


def _serve(settings: Settings) -> None:
    """gunicorn with the OVN connection opened in each worker after fork."""
    # Before prometheus_client is imported: it picks its storage once, at import.
    metrics_dir = None
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        metrics_dir = tempfile.mkdtemp(prefix="ovngw-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    from gunicorn import util
    from gunicorn.app.base import BaseApplication

    from gateway.app import create_app

    util.write_error = write_problem  # workers fork from here and inherit it

    def on_exit(server: Any) -> None:
        if metrics_dir is not None:  # ours, not a folder the operator gave
            shutil.rmtree(metrics_dir, ignore_errors=True)

    class _App(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", [settings.bind])
            self.cfg.set("workers", settings.workers)
            # Each open event stream holds a thread until it ends; at most event_streams
            # are open (more are 429), so requests always keep `threads` of their own.
            self.cfg.set("threads", settings.threads + settings.event_streams)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("loglevel", settings.log_level.lower())
            self.cfg.set("accesslog", None)
            self.cfg.set("timeout", 60)
            self.cfg.set("control_socket_disable", True)
            self.cfg.set("limit_request_line", LIMIT_REQUEST_LINE)
            self.cfg.set("limit_request_field_size", LIMIT_REQUEST_FIELD_SIZE)
            self.cfg.set("limit_request_fields", LIMIT_REQUEST_FIELDS)
            self.cfg.set("on_exit", on_exit)
            self.cfg.set("post_worker_init", _start_worker)

        def load(self) -> Any:
            return create_app(settings, start=False)

    _App().run()


def _start_worker(worker: Any) -> None:
    """After fork: the gateway's connection and workers, and event streams that end as soon
    as the worker is told to stop (a graceful stop waits for every open request)."""
    gw = worker.wsgi.extensions["gateway"]
    gw.start()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        previous = signal.getsignal(signum)

        def ending(sig: int, frame: Any, previous: Any = previous) -> None:
            if gw.events is not None:
                gw.events.stop()
            if callable(previous):
                previous(sig, frame)

        signal.signal(signum, ending)


def _logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s",
                        stream=sys.stderr)
    # Audit lines are JSON documents on their own, one per line, for log shippers.
    audit = logging.getLogger("gateway.audit")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    audit.addHandler(handler)
    audit.setLevel(logging.INFO)
    audit.propagate = False


def cmd_serve(args: argparse.Namespace) -> int:
    settings = from_env()
    settings.validate()
    _logging(settings.log_level)
    _serve(settings)
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from gateway.auth import SCOPE_RE, TENANT_RE, mint

    settings = from_env()
    if not settings.jwt_secret:
        raise ConfigError("token needs GATEWAY_JWT_SECRET (it mints HS256 tokens)")
    if not TENANT_RE.fullmatch(args.tenant):
        raise ConfigError("--tenant must match ^[a-z0-9][a-z0-9-]{0,62}$")
    if not SCOPE_RE.fullmatch(args.scope):
        raise ConfigError("--scope must be scope tokens separated by single spaces")
    print(mint(settings.jwt_secret, args.tenant, args.scope, args.sub, args.ttl,
               settings.jwt_issuer, settings.jwt_audience))
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    directory = Path(args.dir).resolve()
    if args.action == "start":
        box = sandbox.start(directory, args.tcp_port, dataplane=args.dataplane)
        export = f"OVN_NB_DB={box.nb_unix}"
        if box.sb_unix:
            export += f" OVN_SB_DB={box.sb_unix}"
        print(json.dumps({"dir": str(box.dir), "nb": box.nb_unix, "nb_tcp": box.nb_tcp,
                          "pid": box.pid, "dataplane": box.dataplane, "sb": box.sb_unix,
                          "export": export}))
    elif args.action == "stop":
        print("stopped" if sandbox.stop(directory) else "not running")
    elif args.action == "host":
        return _cmd_sandbox_host(args, directory)
    else:
        print(json.dumps(sandbox.status(directory), default=str))
    return 0


def _cmd_sandbox_host(args: argparse.Namespace, directory: Path) -> int:
    from dataclasses import asdict

    from gateway.sandbox import hosts

    if args.host_action == "add":
        nb_db = f"unix:{directory / 'nb.sock'}"
        if args.external is not None:
            from gateway.sandbox import external

            check_outside_options(args)
            host = external.add(directory, args.name, nb_db, args.external, args.ip)
            print(json.dumps(asdict(host)))
            return 0
        mac = hosts.port_mac(nb_db, args.port)
        host = hosts.add_host(directory, args.name, args.port, mac, args.ip, args.gateway)
        print(json.dumps(asdict(host)))
        if args.dhcp:
            lease = hosts.dhcp(directory, args.name)
            print(lease.stdout.strip() or lease.stderr.strip())
            return lease.returncode
        return 0
    if args.host_action == "exec":
        # REMAINDER takes everything after NAME: a --dir given there is still ours.
        command = args.command
        cut = 0
        if command[:1] and command[0].startswith("--dir"):
            cut = 1 if "=" in command[0] else 2
            opts = argparse.ArgumentParser(prog="ovn-nb-gateway sandbox host exec NAME")
            opts.add_argument("--dir", required=True)
            directory = Path(opts.parse_args(command[:cut]).dir).resolve()
        command = command[cut + 1:] if command[cut:cut + 1] == ["--"] else command[cut:]
        if not command:
            raise sandbox.SandboxError("host exec needs a command after --")
        # Output streams through; the command's exit status becomes ours.
        return hosts.exec_in_host(directory, args.name, command, timeout=None,
                                  capture=False).returncode
    if hosts.del_host(directory, args.name):
        print("deleted")
        return 0
    print(f"no host {args.name!r}", file=sys.stderr)
    return 1


def check_outside_options(args: argparse.Namespace) -> None:
    """An outside host (--external) has no logical port: no DHCP, and no default route."""
    given = [flag for flag, value in (("--gateway", args.gateway), ("--dhcp", args.dhcp))
             if value]
    if given:
        raise sandbox.SandboxError(f"{' and '.join(given)} cannot go with --external: an "
                                   "outside host has no logical port")


def cmd_openapi(args: argparse.Namespace) -> int:
    from gateway.app import create_app
    from gateway.openapi import document, to_yaml

    settings = Settings(jwt_secret="x" * 32)
    app = create_app(settings, start=False)
    text = to_yaml(document(app.extensions["gateway"].api))
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text)
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    """The drift report (and repair) against OVN_NB_DB: 0 clean, 1 drift found (and, with
    --repair, repaired), 2 usage or connection problem."""
    from gateway.app import monitored
    from gateway.auth import TENANT_RE
    from gateway.errors import GatewayError
    from gateway.kinds import KINDS
    from gateway.ovn.connection import Northbound
    from gateway.services.catalog import Services
    from gateway.services.drift import DriftService

    if args.tenant is not None and not TENANT_RE.fullmatch(args.tenant):
        raise ConfigError("--tenant must match ^[a-z0-9][a-z0-9-]{0,62}$")
    settings = from_env()  # no token settings needed: nothing is served
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    nb = Northbound(settings, monitored())
    nb.start()
    try:
        if not nb.wait_ready(args.timeout):
            raise ConfigError(f"cannot connect to the northbound database {settings.nb_db} "
                              f"within {args.timeout:g} s")
        services = Services(nb, settings, [kind.service for kind in KINDS])
        drift = DriftService(nb, [services.of(kind.service) for kind in KINDS])
        try:
            report = drift.audit(args.tenant, args.kind, repair=args.repair)
        except GatewayError as exc:
            raise ConfigError(f"audit failed: {exc.detail}") from None
    finally:
        nb.stop()
    if args.output == "json":
        print(json.dumps(report.as_dict(), indent=2, sort_keys=True, default=str))
    else:
        print(f"checked {report.checked} resources: "
              f"{len(report.findings) or 'no'} finding{'' if len(report.findings) == 1 else 's'}")
        for f in report.findings:
            what = f"{f.table} {f.row}" + (f" column {f.column}" if f.column else "")
            print(f"  {f.kind} {f.id} ({f.tenant}/{f.name or '-'}): {f.problem} {what}")
            if f.column:
                print(f"      expected {json.dumps(f.expected)}\n      found    "
                      f"{json.dumps(f.found)}")
        if report.repaired:
            print(f"repaired: {len(report.findings) - len(report.remaining)} restored, "
                  f"{len(report.remaining)} remaining")
            for f in report.remaining:
                print(f"  still: {f.kind} {f.id}: {f.problem} {f.table} {f.row} {f.detail}")
    return 0 if report.clean else 1


def cmd_up(args: argparse.Namespace) -> int:
    """Sandbox + gateway in one: what the README's first quick-start command runs."""
    from gateway.auth import mint

    directory = Path(args.dir).resolve()
    box = sandbox.start(directory, dataplane=args.dataplane)
    secret_file = directory / "jwt-secret"
    if not secret_file.exists():
        secret_file.write_text(secrets.token_urlsafe(48))
        secret_file.chmod(0o600)
    os.environ.setdefault("OVN_NB_DB", box.nb_unix)
    if box.sb_unix:
        os.environ.setdefault("OVN_SB_DB", box.sb_unix)
    os.environ.setdefault("GATEWAY_JWT_SECRET", secret_file.read_text().strip())
    settings = from_env()
    settings.validate()
    token = mint(settings.jwt_secret or "", args.tenant, "read write", "quickstart", 86400)
    admin = mint(settings.jwt_secret or "", args.tenant, "admin", "quickstart-admin", 86400)
    print(f"""
ovn-nb-gateway on http://{settings.bind}  (OVN_NB_DB={settings.nb_db})
  docs:          http://{settings.bind}/docs
  tenant token:  export TOKEN={token}
  admin token:   export ADMIN_TOKEN={admin}
  try:           curl -s -H "Authorization: Bearer $TOKEN" http://{settings.bind}/v1/networks
  stop:          Ctrl-C, then `ovn-nb-gateway sandbox stop --dir {directory}`
  data plane:    {"on: add hosts with `ovn-nb-gateway sandbox host add NAME --port PORT_ID "
                  f"--dir {directory}`" if box.dataplane else "off (start with --dataplane)"}
""", flush=True)
    _logging(settings.log_level)
    _serve(settings)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ovn-nb-gateway", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="serve the API with gunicorn").set_defaults(fn=cmd_serve)
    tok = sub.add_parser("token", help="mint an HS256 token from GATEWAY_JWT_SECRET")
    tok.add_argument("--tenant", required=True)
    tok.add_argument("--scope", default="read write")
    tok.add_argument("--sub", default="cli")
    tok.add_argument("--ttl", type=int, default=3600, help="seconds")
    tok.set_defaults(fn=cmd_token)
    box = sub.add_parser("sandbox", help="a local OVN sandbox (NB database, optional data plane)")
    # --dir and --tcp-port are accepted before or after the action.
    box.add_argument("--dir", default=str(DEFAULT_SANDBOX))
    box.add_argument("--tcp-port", type=int, default=None)
    box.set_defaults(fn=cmd_sandbox, dataplane=False)
    in_dir = argparse.ArgumentParser(add_help=False)
    in_dir.add_argument("--dir", default=argparse.SUPPRESS, help="the sandbox folder")
    actions = box.add_subparsers(dest="action", required=True)
    box_start = actions.add_parser("start", parents=[in_dir], help="start (or complete) it")
    box_start.add_argument("--tcp-port", type=int, default=argparse.SUPPRESS)
    box_start.add_argument("--dataplane", action="store_true",
                           help="also SB, ovn-northd, ovs-vswitchd and ovn-controller (root)")
    actions.add_parser("stop", parents=[in_dir], help="stop its daemons, delete its hosts")
    actions.add_parser("status", parents=[in_dir], help="its daemons and hosts, as JSON")
    host = actions.add_parser("host", help="hosts (network namespaces) on its data plane")
    host_actions = host.add_subparsers(dest="host_action", required=True)
    host_add = host_actions.add_parser(
        "add", parents=[in_dir],
        help="a host wired to a logical switch port, or an outside host on an external network")
    host_add.add_argument("name")
    wiring = host_add.add_mutually_exclusive_group(required=True)
    wiring.add_argument("--port", help="the logical switch port (API port id)")
    wiring.add_argument("--external", metavar="NETWORK_ID",
                        help="an outside host on br-ex, on this external network (API id); "
                             "VLAN-tagged when the network has a vlan")
    host_add.add_argument("--ip", default=None,
                          help="address/prefix to set, e.g. 10.0.0.5/24; with --external, "
                               "default: the network's gateway_ip, prefix: its cidr's")
    host_add.add_argument("--gateway", default=None, help="default route via this address")
    host_add.add_argument("--dhcp", action="store_true",
                          help="configure the host from OVN's DHCP (busybox udhcpc)")
    host_exec = host_actions.add_parser("exec", parents=[in_dir],
                                        help="run a command in a host: exec NAME -- CMD...")
    host_exec.add_argument("name")
    host_exec.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD...")
    host_del = host_actions.add_parser("del", parents=[in_dir], help="delete a host")
    host_del.add_argument("name")
    spec = sub.add_parser("openapi", help="write the OpenAPI document (YAML)")
    spec.add_argument("--output", "-o", default="openapi/openapi.yaml")
    spec.set_defaults(fn=cmd_openapi)
    audit = sub.add_parser("audit", help="report (or --repair) drift of the gateway's OVN "
                                         "rows; exit 0 clean, 1 drift, 2 problem")
    audit.add_argument("--repair", action="store_true",
                       help="rewrite drifted resources from their stored documents and "
                            "delete orphans, one transaction per resource")
    audit.add_argument("--tenant", default=None, help="only this tenant's resources")
    audit.add_argument("--kind", default=None, choices=AUDIT_KINDS,
                       help="only resources of this kind")
    audit.add_argument("--output", "-o", default="text", choices=("text", "json"))
    audit.add_argument("--timeout", type=float, default=30.0,
                       help="seconds to wait for the database (default 30)")
    audit.set_defaults(fn=cmd_audit)
    up = sub.add_parser("up", help="start the sandbox and serve the gateway on it")
    up.add_argument("--dir", default=str(DEFAULT_SANDBOX))
    up.add_argument("--tenant", default="demo")
    up.add_argument("--dataplane", action="store_true",
                    help="also run the OVN data plane (northd, OVS, ovn-controller)")
    up.set_defaults(fn=cmd_up)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except (ConfigError, sandbox.SandboxError) as exc:
        print(f"ovn-nb-gateway: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
