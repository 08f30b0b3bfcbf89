# The gateway alone; it talks to an OVN northbound ovsdb-server given by OVN_NB_DB.
# Two stages: the first installs the project into a virtualenv at /opt/venv and adds the C
# JSON parser of python-ovs; the second is the base image, a few runtime libraries and that
# virtualenv (no compiler, no pip cache, no apt lists). Build and run notes: docs/containers.md.

FROM python:3.11-slim-bookworm AS build

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The C JSON parser (ovs._json) makes the OVSDB replica's initial sync ~35% faster. PyPI's
# ovs only has the pure-Python parser (its C extension needs libopenvswitch headers, which
# Debian 12 does not package), so take the extension from Debian's python3-openvswitch:
# it is built for CPython 3.11 and links libopenvswitch statically, so it needs only the
# shared libraries installed in the final stage. Downloaded, not installed: Debian's python3
# stays out of the image.
RUN apt-get update \
 && cd /tmp \
 && apt-get download python3-openvswitch \
 && dpkg-deb -x python3-openvswitch_*.deb /tmp/deb \
 && mkdir /tmp/ovs-c \
 && cp /tmp/deb/usr/lib/python3/dist-packages/ovs/_json.cpython-311-*.so /tmp/ovs-c/ \
 && rm -rf /tmp/deb /tmp/*.deb /var/lib/apt/lists/*

# Only what the package build needs (see .dockerignore). The virtualenv has no pip of its
# own: the base image's pip installs into it.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
RUN python -m venv --without-pip /opt/venv \
 && python -m pip --python /opt/venv/bin/python install . \
 && cp /tmp/ovs-c/_json.cpython-311-*.so \
       "$(/opt/venv/bin/python -c 'import os, ovs; print(os.path.dirname(ovs.__file__))')/"


FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH

# The shared libraries Debian's ovs._json links against (python3-openvswitch's Depends
# without python3 and libc6; libssl3 is in the base image already).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libbpf1 libnuma1 libunbound8 libxdp1 \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --create-home --home-dir /home/gateway --shell /usr/sbin/nologin gateway

COPY --from=build /opt/venv /opt/venv
# Fail the build rather than ship the slow parser: an ImportError here names a missing library.
RUN python -c "import ovs._json, ovs.json; assert ovs.json.PARSER == 'C', ovs.json.PARSER"

USER gateway
WORKDIR /home/gateway
ENV GATEWAY_BIND=0.0.0.0:8080
EXPOSE 8080

# Ask on the port GATEWAY_BIND names, so overriding it does not break the check.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('GATEWAY_BIND', ':8080').rsplit(':', 1)[1]; urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4)"]

CMD ["ovn-nb-gateway", "serve"]
