#!/usr/bin/env bash
# The container route, end to end, with podman (no Docker engine, no registry needed):
#   1. base stand-ins, built once when absent: localhost/debian:bookworm (debootstrap, minbase)
#      tagged debian:bookworm-slim too, and localhost/python:3.11-slim-bookworm (Debian's
#      python3 as `python`, pip, the host's extra CA certificates);
#   2. the gateway image from ./Dockerfile as is, and the compose file's ovn-nb image;
#   3. docker-compose.yml up with podman-compose (its own project name, a free host port),
#      health by `podman healthcheck run` (no timers without systemd), then in the gateway
#      container: a non-root user and the C JSON parser of python-ovs; through the published
#      port: /readyz, then a network and a port, found with ovn-nbctl inside ovn-nb;
#   4. everything the project made (containers, pod, network, volume) removed, also on
#      failure; leftovers of an interrupted run are removed first (by the project's label).
# Built images stay (they are the cache of the next run). One line per step; non-zero exit
# when any check fails. Docs: docs/containers.md.
# Environment: IMAGE_TEST_DATAPLANE=1 (also the experimental `dataplane` profile: a port bound
# on its chassis must turn up), IMAGE_TEST_CACHE (default ~/.cache/ovn-nb-gateway-image),
# IMAGE_TEST_PORT (default: a free port), DEBIAN_MIRROR (default: apt's), VERBOSE=1.
# Needs root, podman, runc, debootstrap and (CNI) the dnsname plugin: scripts/bootstrap.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
T0=$SECONDS

CACHE=${IMAGE_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ovn-nb-gateway-image}
# One project per checkout, so that parallel worktrees do not remove each other's containers.
PROJECT=ovngw-it-$(printf '%s' "$ROOT" | sha256sum | cut -c1-8)
GW_IMAGE=localhost/${PROJECT}_gateway   # the names podman-compose gives the services' images
NB_IMAGE=localhost/${PROJECT}_ovn-nb
GW_BUILD_IMAGE=localhost/${PROJECT}_gateway-build
DP_IMAGE=localhost/${PROJECT}_ovn-dataplane
DEBIAN_IMAGE=localhost/debian:bookworm
PYTHON_IMAGE=localhost/python:3.11-slim-bookworm
LABEL=io.podman.compose.project=$PROJECT
PY=$ROOT/.venv/bin/python

step() { printf '==> image-test: %s (%ds)\n' "$*" $((SECONDS - T0)); }
fail() { printf 'image-test: FAILED: %s\n' "$*" >&2; exit 1; }

# Run a command silently, but show the end of its output if it fails.
quiet() {
  if [[ ${VERBOSE:-0} == 1 ]]; then "$@"; return; fi
  local log rc=0
  log=$(mktemp)
  "$@" >"$log" 2>&1 || rc=$?
  if ((rc != 0)); then tail -n 60 "$log" >&2; fi
  rm -f "$log"
  return "$rc"
}

# --- tools and podman settings ---------------------------------------------------------------
for tool in podman debootstrap flock; do
  command -v "$tool" >/dev/null || fail "$tool not found (scripts/bootstrap.sh installs it)"
done
[[ -x $PY ]] || fail ".venv missing: run scripts/bootstrap.sh first"
((EUID == 0)) || fail "needs root (debootstrap, podman's default bridge network)"
mkdir -p "$CACHE"

# Settings this kind of host needs and that are harmless elsewhere, for this script's podman
# only (CONTAINERS_CONF; the system's containers.conf is not touched): crun 1.8 refuses
# hybrid cgroup layouts, so runc when installed; and containers may not raise their limits
# above the hard ones of this shell, so the defaults are those.
nofile=$(ulimit -Hn); nproc=$(ulimit -Hu)
[[ $nofile == unlimited ]] && nofile=1048576
[[ $nproc == unlimited || $nproc -gt 32768 ]] && nproc=32768
{
  printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=%s:%s"]\n' \
    "$nofile" "$nofile" "$nproc" "$nproc"
  if command -v runc >/dev/null; then printf '[engine]\nruntime = "runc"\n'; fi
} >"$CACHE/containers.conf"
export CONTAINERS_CONF=$CACHE/containers.conf

# podman-compose >= 1.1 (Debian's 1.0.3 ignores dockerfile_inline) in a venv of its own.
TOOLS=$CACHE/tools
if ! "$TOOLS/bin/podman-compose" --version >/dev/null 2>&1; then
  rm -rf "$TOOLS"
  quiet python3 -m venv "$TOOLS"
  quiet "$TOOLS/bin/pip" install -q 'podman-compose>=1.1,<2'
fi
COMPOSE=("$TOOLS/bin/podman-compose" -p "$PROJECT" -f "$ROOT/docker-compose.yml")
# IMAGE_TEST_DATAPLANE=1: also the compose file's `dataplane` profile (experimental).
DATAPLANE=${IMAGE_TEST_DATAPLANE:-0}
if [[ $DATAPLANE == 1 ]]; then COMPOSE+=(--profile dataplane); fi
runtime=$(podman info -f '{{.Host.OCIRuntime.Name}}')
# Services find each other by name (tcp:ovn-nb:6641): with podman 4's CNI backend that is
# the dnsname plugin (Debian: golang-github-containernetworking-plugin-dnsname).
if [[ $(podman info -f '{{.Host.NetworkBackend}}') == cni ]] &&
  ! compgen -G '/usr/lib/cni/dnsname' >/dev/null && ! compgen -G '/usr/libexec/cni/dnsname' >/dev/null &&
  ! compgen -G '/opt/cni/bin/dnsname' >/dev/null; then
  fail "no CNI dnsname plugin: compose services cannot resolve each other" \
    "(apt-get install golang-github-containernetworking-plugin-dnsname)"
fi
step "podman $(podman version -f '{{.Client.Version}}') ($runtime)," \
  "$("$TOOLS/bin/podman-compose" --version 2>/dev/null | head -n1), project $PROJECT"

# Runs of the same checkout wait for each other.
exec 9>"$CACHE/$PROJECT.lock"
flock -w 900 9 || fail "another image-test of this checkout holds $CACHE/$PROJECT.lock"

# --- teardown: by the project's label, never by name patterns --------------------------------
teardown() {
  local ids
  ids=$(podman ps -aq --filter "label=$LABEL")
  # shellcheck disable=SC2086
  if [[ -n $ids ]]; then podman rm -f -t 3 $ids >/dev/null 2>&1 || true; fi
  ids=$(podman pod ps -q --filter "label=$LABEL")
  if podman pod exists "pod_$PROJECT"; then ids+=" pod_$PROJECT"; fi
  # shellcheck disable=SC2086
  if [[ -n ${ids// /} ]]; then podman pod rm -f $ids >/dev/null 2>&1 || true; fi
  ids=$(podman network ls -q --filter "label=$LABEL")
  # shellcheck disable=SC2086
  if [[ -n $ids ]]; then podman network rm -f $ids >/dev/null 2>&1 || true; fi
  ids=$(podman volume ls -q --filter "label=$LABEL")
  # shellcheck disable=SC2086
  if [[ -n $ids ]]; then podman volume rm -f $ids >/dev/null 2>&1 || true; fi
}
left() {
  printf '%s' "$(podman ps -aq --filter "label=$LABEL")$(podman network ls -q --filter "label=$LABEL")$(podman volume ls -q --filter "label=$LABEL")"
}
on_exit() {
  local rc=$? id
  trap - EXIT
  if ((rc != 0)); then
    for id in $(podman ps -aq --filter "label=$LABEL" 2>/dev/null); do
      printf -- '--- logs of %s (last 30 lines)\n' "$(podman inspect -f '{{.Name}}' "$id")" >&2
      podman logs --tail 30 "$id" >&2 2>&1 || true
    done
  fi
  teardown
  if [[ -n $(left) ]]; then
    printf 'image-test: teardown left containers, networks or volumes of %s\n' "$LABEL" >&2
    rc=1
  fi
  if ((rc == 0)); then step "teardown: containers, pod, network and volume removed; passed"
  else step "teardown done; FAILED (exit $rc)"; fi
  exit "$rc"
}

if [[ -n $(left) ]] || podman pod exists "pod_$PROJECT"; then
  teardown
  [[ -z $(left) ]] || fail "could not remove the leftovers labelled $LABEL"
  step "leftovers of an earlier run removed"
fi
trap on_exit EXIT
trap 'exit 130' INT TERM

# --- base stand-ins ---------------------------------------------------------------------------
mb() { podman image inspect -f '{{.Size}}' "$1" | awk '{printf "%.0f MB", $1 / 1e6}'; }
# A rebuild leaves the previous image untagged: remove it (when no container uses it).
build() {   # image, command...
  local image=$1 old new
  shift
  old=$(podman image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
  quiet timeout 900 "$@"
  new=$(podman image inspect -f '{{.Id}}' "$image")
  if [[ -n $old && $old != "$new" ]]; then podman rmi "$old" >/dev/null 2>&1 || true; fi
}

# The Debian mirror apt already uses (deb822 .sources or sources.list), else deb.debian.org.
apt_mirror() {
  local m=
  m=$(awk 'BEGIN { RS = ""; FS = "\n" }
    { u = ""; s = 0; t = 0
      for (i = 1; i <= NF; i++) {
        if ($i ~ /^URIs:/) { split($i, a, /[ \t]+/); u = a[2] }
        if ($i ~ /^Suites:/ && $i ~ /[ \t]bookworm([ \t]|$)/) s = 1
        if ($i ~ /^Types:/ && $i ~ /[ \t]deb([ \t]|$)/) t = 1 }
      if (u != "" && s && t) { print u; exit } }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  if [[ -z $m && -r /etc/apt/sources.list ]]; then
    m=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/) {
           if ($(i + 1) == "bookworm") { print $i; exit } else break } }' /etc/apt/sources.list)
  fi
  printf '%s\n' "${m:-http://deb.debian.org/debian}"
}

exec 8>"$CACHE/base.lock"   # shared by every checkout of this user
flock -w 900 8 || fail "another image-test holds $CACHE/base.lock"
# A stand-in is rebuilt when its recipe changes: its label `standin` holds this number.
RECIPE=1
standin_ok() {
  [[ $(podman image inspect -f '{{index .Config.Labels "standin"}}' "$1" 2>/dev/null) == "$RECIPE" ]]
}
if standin_ok "$DEBIAN_IMAGE"; then
  step "base $DEBIAN_IMAGE: present ($(mb "$DEBIAN_IMAGE"))"
else
  mirror=${DEBIAN_MIRROR:-$(apt_mirror)}
  [[ -n $CACHE && $CACHE != / ]] || fail "bad cache folder '$CACHE'"
  rootfs=$CACHE/rootfs
  [[ $rootfs == /?*/rootfs ]] || fail "bad rootfs folder '$rootfs'"
  rm -rf "${rootfs:?}"
  quiet timeout 900 debootstrap --variant=minbase bookworm "$rootfs" "$mirror"
  # As in Docker Hub's debian:bookworm-slim: apt keeps no .deb and no package cache, dpkg
  # leaves out documentation (but copyright files), manual pages and translations.
  printf '%s\n' \
    'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };' \
    'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };' \
    'Dir::Cache::pkgcache "";' 'Dir::Cache::srcpkgcache "";' \
    >"${rootfs:?}/etc/apt/apt.conf.d/docker-clean"
  printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
    'path-exclude /usr/share/man/*' 'path-exclude /usr/share/groff/*' \
    'path-exclude /usr/share/info/*' 'path-exclude /usr/share/lintian/*' \
    'path-exclude /usr/share/linda/*' 'path-exclude /usr/share/locale/*' \
    >"${rootfs:?}/etc/dpkg/dpkg.cfg.d/docker"
  find "${rootfs:?}/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  rm -rf "${rootfs:?}"/usr/share/{man,groff,info,lintian,linda,locale}/* \
    "${rootfs:?}"/var/lib/apt/lists/* "${rootfs:?}"/var/cache/apt/*.bin \
    "${rootfs:?}"/var/cache/apt/archives/*.deb
  tar --numeric-owner -C "$rootfs" -c . |
    quiet podman import --change 'CMD ["bash"]' --change "LABEL standin=$RECIPE" - "$DEBIAN_IMAGE"
  rm -rf "${rootfs:?}"
  podman rmi localhost/debian:bookworm-slim >/dev/null 2>&1 || true   # the old image's tag
  step "base $DEBIAN_IMAGE: built with debootstrap from $mirror ($(mb "$DEBIAN_IMAGE"))"
fi
# The compose file's ovn-nb service starts FROM debian:bookworm-slim; minbase is that.
podman image exists localhost/debian:bookworm-slim || podman tag "$DEBIAN_IMAGE" localhost/debian:bookworm-slim

DEBIAN_ID=$(podman image inspect -f "{{.Id}}" "$DEBIAN_IMAGE")
if standin_ok "$PYTHON_IMAGE" &&
  [[ $(podman image inspect -f '{{index .Config.Labels "standin.base"}}' "$PYTHON_IMAGE") == "$DEBIAN_ID" ]]; then
  step "base $PYTHON_IMAGE: present ($(mb "$PYTHON_IMAGE"))"
else
  ctx=$(mktemp -d)
  mkdir "$ctx/certs"
  # This network re-signs HTTPS: pip in builds trusts PyPI only with the host's extra CAs.
  for crt in /usr/local/share/ca-certificates/*.crt; do
    [[ -e $crt ]] && cp "$crt" "$ctx/certs/"
  done
  cat >"$ctx/Containerfile" <<'EOF'
# A stand-in for Docker Hub's python:3.11-slim-bookworm: Debian's python3 (3.11), pip and
# venv, `python` on the PATH, pip allowed to install (no EXTERNALLY-MANAGED).
FROM localhost/debian:bookworm
COPY certs/ /usr/local/share/ca-certificates/
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates python3 python3-pip python3-venv \
 && update-ca-certificates \
 && rm -f /usr/lib/python3.11/EXTERNALLY-MANAGED \
 && ln -s /usr/bin/python3 /usr/local/bin/python \
 && rm -rf /var/lib/apt/lists/*
ENV LANG=C.UTF-8 PIP_CERT=/etc/ssl/certs/ca-certificates.crt
CMD ["python3"]
EOF
  build "$PYTHON_IMAGE" podman build --pull=never --format docker --label "standin=$RECIPE" \
    --label "standin.base=$DEBIAN_ID" -t "$PYTHON_IMAGE" "$ctx"
  rm -rf "$ctx"
  step "base $PYTHON_IMAGE: built ($(mb "$PYTHON_IMAGE"))"
fi
exec 8>&-   # closed, not just unlocked: no container may inherit it

# --- the images -------------------------------------------------------------------------------
t=$SECONDS
# The build stage gets a tag too: it is the layer cache of the next run, and the helper
# removes the one it replaces.
build "$GW_BUILD_IMAGE" podman build --pull=never --format docker --target build \
  -t "$GW_BUILD_IMAGE" "$ROOT"
build "$GW_IMAGE" podman build --pull=never --format docker -t "$GW_IMAGE" "$ROOT"
[[ $(podman image inspect -f '{{.Config.User}}' "$GW_IMAGE") == gateway ]] ||
  fail "the gateway image does not run as the user gateway"
podman image inspect -f '{{.Config.Healthcheck}}' "$GW_IMAGE" | grep -q healthz ||
  fail "the gateway image has no HEALTHCHECK (built without --format docker?)"
step "gateway image $GW_IMAGE built in $((SECONDS - t))s: $(mb "$GW_IMAGE")"

# Every compose command needs GATEWAY_JWT_SECRET (${...:?} in the file), builds included.
SECRET=$("$PY" -c 'import secrets; print(secrets.token_hex(32))')
PORT=${IMAGE_TEST_PORT:-$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
export GATEWAY_JWT_SECRET=$SECRET GATEWAY_PORT=$PORT
t=$SECONDS
build "$NB_IMAGE" "${COMPOSE[@]}" --podman-build-args='--format docker' build --pull never ovn-nb
step "ovn-nb image $NB_IMAGE built in $((SECONDS - t))s: $(mb "$NB_IMAGE")"
if [[ $DATAPLANE == 1 ]]; then
  export OVN_SB_DB=tcp:ovn-dataplane:6642
  t=$SECONDS
  build "$DP_IMAGE" "${COMPOSE[@]}" --podman-build-args='--format docker' build --pull never \
    ovn-dataplane
  step "ovn-dataplane image $DP_IMAGE built in $((SECONDS - t))s: $(mb "$DP_IMAGE")"
fi

# --- compose up ------------------------------------------------------------------------------
# Without fd 9: conmon and dnsmasq, which outlive this script, would inherit it and hold the
# lock of this checkout for as long as the containers of an interrupted run live.
quiet "${COMPOSE[@]}" up -d --no-build 9>&- || fail "podman-compose up failed"
service_id() {
  podman ps -aq --filter "label=$LABEL" --filter "label=io.podman.compose.service=$1" | head -n1
}
NB=$(service_id ovn-nb); GW=$(service_id gateway)
[[ -n $NB && -n $GW ]] || fail "compose up did not create both containers"
step "compose up: project $PROJECT, gateway on 127.0.0.1:$PORT"

# Health checks do not run on a timer without systemd: run them until they pass.
wait_healthy() {   # container, service, seconds
  local t=$SECONDS state
  until podman healthcheck run "$1" >/dev/null 2>&1; do
    state=$(podman inspect -f '{{.State.Status}}' "$1")
    [[ $state == running ]] || fail "$2 is $state, not running"
    ((SECONDS - t < $3)) || fail "$2 not healthy after $3s"
    sleep 1
  done
  step "$2 healthy after $((SECONDS - t))s"
}
wait_healthy "$NB" ovn-nb 60
wait_healthy "$GW" gateway 90
if [[ $DATAPLANE == 1 ]]; then
  DP=$(service_id ovn-dataplane)
  [[ -n $DP ]] || fail "compose up did not create ovn-dataplane"
  wait_healthy "$DP" ovn-dataplane 90
fi

# --- checks -----------------------------------------------------------------------------------
uid=$(podman exec "$GW" id -u)
((uid != 0)) || fail "the gateway runs as root"
parser=$(podman exec "$GW" python -c 'import ovs.json; print(ovs.json.PARSER)')
[[ $parser == C ]] || fail "ovs JSON parser in the container is $parser, not C"
step "gateway container: uid $uid ($(podman exec "$GW" id -un)), ovs JSON parser $parser"

# http METHOD PATH [JSON]: prints the status on the first line, then the body.
http() {
  "$PY" - "$@" <<'EOF'
import sys, urllib.error, urllib.request
method, url = sys.argv[1], sys.argv[2]
data = sys.argv[3].encode() if len(sys.argv) > 3 else None
req = urllib.request.Request(url, data=data, method=method)
req.add_header("Authorization", "Bearer " + __import__("os").environ.get("TOKEN", ""))
if data:
    req.add_header("Content-Type", "application/json")
try:
    with urllib.request.urlopen(req, timeout=20) as r:
        status, body = r.status, r.read()
except urllib.error.HTTPError as e:
    status, body = e.code, e.read()
print(status)
print(body.decode())
EOF
}
field() { "$PY" -c 'import json, sys; v = json.load(sys.stdin).get(sys.argv[1], ""); print(v if isinstance(v, str) else json.dumps(v))' "$1"; }
BASE=http://127.0.0.1:$PORT

# /readyz: ready once the gateway's replica of the NB database is in sync.
t=$SECONDS
until out=$(http GET "$BASE/readyz") && [[ $(head -n1 <<<"$out") == 200 ]]; do
  ((SECONDS - t < 60)) || fail "/readyz not 200 after 60s: $out"
  sleep 1
done
ready=$(tail -n +2 <<<"$out")
jp=$(field json_parser <<<"$ready")
if [[ -n $jp && $jp != C ]]; then fail "/readyz reports json_parser $jp"; fi
step "/readyz 200, json_parser ${jp:-(not reported)}"

TOKEN=$(GATEWAY_JWT_SECRET=$SECRET "$ROOT/.venv/bin/ovn-nb-gateway" token --tenant image-test \
  --scope 'networks:read networks:write')
export TOKEN
out=$(http POST "$BASE/v1/networks" '{"name": "it-net", "cidr": "10.77.0.0/24"}')
[[ $(head -n1 <<<"$out") == 201 ]] || fail "POST /v1/networks: $out"
NET=$(tail -n +2 <<<"$out" | field id)
out=$(http POST "$BASE/v1/networks/$NET/ports" '{"name": "it-port"}')
[[ $(head -n1 <<<"$out") == 201 ]] || fail "POST /v1/networks/$NET/ports: $out"
PORT_ID=$(tail -n +2 <<<"$out" | field id)
MAC=$(tail -n +2 <<<"$out" | field mac)
IP=$(tail -n +2 <<<"$out" | "$PY" -c 'import json, sys; print((json.load(sys.stdin).get("ips") or [""])[0])')
[[ -n $MAC && -n $IP ]] || fail "the port has no mac or ips: $out"
step "through 127.0.0.1:$PORT: network $NET, port $PORT_ID ($MAC $IP)"

# What OVN holds, asked inside the ovn-nb container.
nbctl() { podman exec "$NB" ovn-nbctl --db=tcp:127.0.0.1:6641 "$@"; }
ls_name=$(nbctl --bare --columns=name find Logical_Switch "external_ids:\"ovn-nb-gateway:id\"=\"$NET\"")
[[ -n $ls_name ]] || fail "no Logical_Switch with ovn-nb-gateway:id=$NET"
lsp=$(nbctl --bare --columns=name,addresses,external_ids find Logical_Switch_Port \
  "external_ids:\"ovn-nb-gateway:id\"=\"$PORT_ID\"")
[[ -n $lsp ]] || fail "no Logical_Switch_Port with ovn-nb-gateway:id=$PORT_ID"
grep -qF "ovn-nb-gateway:parent=\"$NET\"" <<<"$lsp" || grep -qF "ovn-nb-gateway:parent=$NET" <<<"$lsp" ||
  fail "the port's row does not name network $NET as its parent: $lsp"
lsp_name=$(head -n1 <<<"$lsp")
show=$(nbctl show "$ls_name")
grep -qF "port $lsp_name" <<<"$show" || fail "ovn-nbctl show $ls_name does not list $lsp_name: $show"
grep -qF "$MAC $IP" <<<"$show" || fail "ovn-nbctl show lacks the address \"$MAC $IP\": $show"
step "ovn-nbctl in ovn-nb: switch $ls_name holds port $lsp_name ($(grep -m1 addresses <<<"$show" | xargs))"

if [[ $DATAPLANE == 1 ]]; then
  # Bind the port on the chassis: an internal port of br-int (a tap device) with its iface-id.
  podman exec "$DP" ovs-vsctl --timeout=20 add-port br-int it-vif \
    -- set Interface it-vif type=internal "external_ids:iface-id=$lsp_name" >/dev/null
  t=$SECONDS
  until [[ $(nbctl get Logical_Switch_Port "$lsp_name" up) == true ]] &&
    out=$(http GET "$BASE/v1/ports/$PORT_ID") && [[ $(tail -n +2 <<<"$out" | field status) == up ]]; do
    ((SECONDS - t < 60)) || fail "port $PORT_ID not up after 60s: $(nbctl list Logical_Switch_Port "$lsp_name" | grep -E '^(up|name)')"
    sleep 1
  done
  crashes=$(podman exec "$DP" sh -c 'grep -c "crashes:" /var/log/ovn/ovn-controller.log' || true)
  step "dataplane: port $PORT_ID bound on compose-chassis, status up after $((SECONDS - t))s" \
    "(ovn-controller restarts after crashes: ${crashes:-0})"
fi
