#!/bin/sh
# The `dataplane` profile of docker-compose.yml: a southbound database, ovn-northd (reading
# the ovn-nb service's northbound database), an Open vSwitch with the userspace datapath
# (netdev) and ovn-controller, whose chassis is a gateway chassis with the provider bridge
# br-ex for physnet1 (as `ovn-nb-gateway sandbox start --dataplane`, without namespaces).
# The southbound database is published to the other services on tcp 6642.
set -eu
NB=${OVN_NB_DB:-tcp:ovn-nb:6641}
CHASSIS=${OVN_CHASSIS:-compose-chassis}
mkdir -p /var/lib/ovn /run/ovn /var/log/ovn /etc/openvswitch /run/openvswitch /var/log/openvswitch

[ -e /var/lib/ovn/sb.db ] || ovsdb-tool create /var/lib/ovn/sb.db /usr/share/ovn/ovn-sb.ovsschema
ovsdb-server --detach --no-chdir --pidfile=/run/ovn/sb.pid --log-file=/var/log/ovn/sb.log \
  --unixctl=/run/ovn/sb.ctl --remote=punix:/run/ovn/ovnsb_db.sock --remote=ptcp:6642:0.0.0.0 \
  /var/lib/ovn/sb.db
ovn-northd --detach --no-chdir --pidfile=/run/ovn/northd.pid --log-file=/var/log/ovn/northd.log \
  --ovnnb-db="$NB" --ovnsb-db=unix:/run/ovn/ovnsb_db.sock

[ -e /etc/openvswitch/conf.db ] ||
  ovsdb-tool create /etc/openvswitch/conf.db /usr/share/openvswitch/vswitch.ovsschema
ovsdb-server --detach --no-chdir --pidfile=/run/openvswitch/ovsdb-server.pid \
  --log-file=/var/log/openvswitch/ovsdb-server.log --remote=punix:/run/openvswitch/db.sock \
  /etc/openvswitch/conf.db
ovs-vsctl --no-wait init -- set Open_vSwitch . \
  external_ids:system-id="$CHASSIS" external_ids:hostname="$CHASSIS" \
  external_ids:ovn-remote=unix:/run/ovn/ovnsb_db.sock \
  external_ids:ovn-encap-type=geneve external_ids:ovn-encap-ip=127.0.0.1 \
  external_ids:ovn-bridge=br-int external_ids:ovn-bridge-datapath-type=netdev \
  external_ids:ovn-bridge-mappings=physnet1:br-ex \
  external_ids:ovn-cms-options=enable-chassis-as-gw
ovs-vswitchd --detach --no-chdir --pidfile=/run/openvswitch/ovs-vswitchd.pid \
  --log-file=/var/log/openvswitch/ovs-vswitchd.log unix:/run/openvswitch/db.sock
# Returns once ovs-vswitchd has created the bridges (their internal ports are tap devices).
ovs-vsctl --timeout=20 \
  -- --may-exist add-br br-int \
  -- set Bridge br-int datapath_type=netdev fail-mode=secure other-config:disable-in-band=true \
  -- --may-exist add-br br-ex -- set Bridge br-ex datapath_type=netdev

# --monitor: OVS restarts it when it crashes. Seen on the host this was written on: Debian's
# ovn-controller 23.03.1 died with SIGSEGV (main thread, soon after it connected to br-int)
# in about one start out of three in a container, never in the host's own sandbox.
ovn-controller --detach --monitor --no-chdir --pidfile=/run/ovn/ovn-controller.pid \
  --log-file=/var/log/ovn/ovn-controller.log unix:/run/openvswitch/db.sock

# PID 1 stays this shell: it shows the daemons' logs, stops them on SIGTERM and exits when
# one of them is gone for more than 20 s (the monitor may wait 10 s before a restart), so
# that the restart policy can act.
PIDFILES="/run/ovn/sb.pid /run/ovn/northd.pid /run/openvswitch/ovsdb-server.pid
  /run/openvswitch/ovs-vswitchd.pid /run/ovn/ovn-controller.pid"
tail -n +1 -F /var/log/ovn/northd.log /var/log/ovn/ovn-controller.log \
  /var/log/openvswitch/ovs-vswitchd.log 2>/dev/null &
stop() {
  ovs-appctl -t "/run/ovn/ovn-controller.$(cat /run/ovn/ovn-controller.pid).ctl" exit || true
  ovs-appctl -t "/run/openvswitch/ovs-vswitchd.$(cat /run/openvswitch/ovs-vswitchd.pid).ctl" \
    exit --cleanup || true
  for f in $PIDFILES; do kill "$(cat "$f")" 2>/dev/null || true; done
  exit 0
}
trap stop TERM INT
gone=0
while :; do
  down=
  for f in $PIDFILES; do
    kill -0 "$(cat "$f" 2>/dev/null)" 2>/dev/null || down="$down $f"
  done
  if [ -z "$down" ]; then gone=0; else gone=$((gone + 1)); fi
  if [ "$gone" -gt 10 ]; then
    echo "ovn-dataplane: gone:$down" >&2
    exit 1
  fi
  sleep 2 &
  wait $! || true
done
