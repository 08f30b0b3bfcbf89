"""WSGI entry for gunicorn: `gunicorn gateway.wsgi:app`. The OVN connection opens in
post_fork (see cli.py) or, without gunicorn's hook, on first import in the worker."""

from __future__ import annotations

from gateway.app import create_app

app = create_app(start=False)  # started in post_worker_init or lazily
