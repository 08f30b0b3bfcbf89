# The gateway alone; it talks to an OVN northbound ovsdb-server given by OVN_NB_DB.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --system --create-home --home-dir /home/gateway --shell /usr/sbin/nologin gateway

# Only what the package build needs: copying the whole tree would bring in .git and .venv.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
RUN pip install . && rm -rf /src

USER gateway
WORKDIR /home/gateway
ENV GATEWAY_BIND=0.0.0.0:8080
EXPOSE 8080

# Ask on the port GATEWAY_BIND names, so overriding it does not break the check.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('GATEWAY_BIND', ':8080').rsplit(':', 1)[1]; urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4)"]

CMD ["ovn-nb-gateway", "serve"]
