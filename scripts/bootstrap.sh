#!/usr/bin/env bash
# Set up this repo from nothing on Debian 12: OVN/OVS packages, .venv, and Debian's C JSON
# parser for the OVSDB IDL. Idempotent and quick on re-runs; starts no daemon.
# Quiet except one line per step; VERBOSE=1 shows everything.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PACKAGES=(ovn-central ovn-host openvswitch-switch python3-openvswitch iproute2 iputils-ping
  busybox dnsutils netcat-openbsd ethtool socat tcpdump python3-venv
  podman buildah runc debootstrap golang-github-containernetworking-plugin-dnsname chromium wrk)
VENV=.venv

step() { printf '==> %s\n' "$*"; }
die() { printf 'bootstrap: %s\n' "$*" >&2; exit 1; }

# Run a command silently, but show its whole output if it fails.
quiet() {
  if [[ ${VERBOSE:-0} == 1 ]]; then "$@"; return; fi
  local log rc=0
  log=$(mktemp)
  "$@" >"$log" 2>&1 || rc=$?
  if ((rc != 0)); then cat "$log" >&2; fi
  rm -f "$log"
  return "$rc"
}

# --- system packages -------------------------------------------------------------------------
missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done
if ((${#missing[@]} == 0)); then
  step "system packages: all present"
else
  command -v apt-get >/dev/null || die "apt-get not found; this script targets Debian 12"
  SUDO=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null || die "not root and no sudo: cannot install ${missing[*]}"
    SUDO=(sudo)
  fi
  # Where an init system exists, postinst scripts would start the system-wide OVN/OVS
  # daemons; a policy-rc.d answering 101 ("action forbidden") stops that. The project
  # starts its own daemons in sandbox folders instead.
  policy=/usr/sbin/policy-rc.d
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
    "${SUDO[@]}" chmod +x "$policy"
    trap '"${SUDO[@]}" rm -f "$policy"' EXIT
  fi
  step "system packages: installing ${missing[*]}"
  quiet "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  quiet "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# --- Python 3.11 virtualenv -------------------------------------------------------------------
is311() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; }
if [[ -x $VENV/bin/python ]] && is311 "$VENV/bin/python"; then
  step "venv: $VENV exists"
else
  PY=
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null && is311 "$cand"; then
      PY=$("$cand" -c 'import sys; print(sys.executable)')  # past any pyenv shim
      break
    fi
  done
  [[ -n $PY ]] || die "Python 3.11 not found as python3.11 or python3"
  step "venv: creating $VENV with $PY"
  rm -rf "$VENV"
  quiet "$PY" -m venv "$VENV"
fi

# Reinstall only when the project's metadata changed: the install is editable, so source
# edits need nothing, and skipping pip keeps re-runs fast.
stamp=$VENV/.bootstrap-pyproject.sha256
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
  step "pip: dependencies up to date"
else
  step "pip: installing -e .[dev]"
  quiet "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[dev]'
  printf '%s\n' "$want" >"$stamp"
fi

# --- C JSON parser ----------------------------------------------------------------------------
# PyPI's ovs has only the pure-Python JSON parser; Debian's C one loads into it on CPython
# 3.11 and makes the IDL's initial sync ~35% faster (see OVN-NOTES).
so=$(compgen -G '/usr/lib/python3/dist-packages/ovs/_json.cpython-311-*.so' | head -n1 || true)
if [[ -n $so ]]; then
  ovsdir=$("$VENV/bin/python" -c 'import os, ovs; print(os.path.dirname(ovs.__file__))')
  cmp -s "$so" "$ovsdir/$(basename "$so")" || cp "$so" "$ovsdir/"
fi
parser=$("$VENV/bin/python" -c 'import ovs.json; print(ovs.json.PARSER)')
step "ovs JSON parser: $parser"
