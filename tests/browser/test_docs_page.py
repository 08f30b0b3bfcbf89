"""`GET /docs` in a real browser: headless Chromium (Debian's /usr/bin/chromium, driven by
Playwright) renders Swagger UI from a running gateway, with nothing but the gateway to reach.

The page must render every operation of the served OpenAPI document, raise no script
error, and request nothing from another origin (every request URL is recorded; one to
another host is aborted and fails the test). A screenshot is kept as a test artifact in
`$TEST_ARTIFACTS_DIR` (default `test-artifacts/` at the repository root).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from helpers.api import SECRET
from helpers.serving import Served, gateway_env, serving

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS_DIR",
                                Path(__file__).resolve().parents[2] / "test-artifacts"))
# Quiet, self-contained Chromium: no background connections of its own (update checks,
# component downloads, sync), no QUIC, no GPU; --no-sandbox because CI runs as root.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions",
         # Host names resolve to nothing: only the gateway's 127.0.0.1 is reachable.
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


@pytest.fixture(scope="module")
def gateway(nb_sandbox: Any) -> Iterator[Served]:
    with serving(gateway_env(nb_sandbox.nb_unix, SECRET)) as served:
        yield served


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not installed; run scripts/bootstrap.sh")
    with sync_api.sync_playwright() as pw:
        yield pw


def test_docs_page_renders_every_operation_offline(gateway: Served, playwright: Any,
                                                   tmp_path: Path) -> None:
    document = requests.get(gateway.base + "/openapi.json", timeout=30).json()
    expected = {(method.upper(), path) for path, item in document["paths"].items()
                for method in item if method in HTTP_METHODS}
    assert len(expected) > 20, expected

    origin = urlsplit(gateway.base)
    requested: list[str] = []
    foreign: list[str] = []
    failed: list[str] = []
    page_errors: list[str] = []

    def guard(route: Any) -> None:
        url = route.request.url
        parts = urlsplit(url)
        if (parts.scheme, parts.hostname, parts.port) == (origin.scheme, origin.hostname,
                                                          origin.port):
            route.continue_()
        else:
            foreign.append(url)
            route.abort()

    context = playwright.chromium.launch_persistent_context(
        str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=FLAGS,
        viewport={"width": 1280, "height": 1000}, service_workers="block")
    try:
        context.route("**/*", guard)
        context.on("request", lambda req: requested.append(req.url))
        context.on("requestfailed", lambda req: failed.append(f"{req.url} {req.failure}"))
        page = context.new_page()
        page.on("pageerror", lambda exc: page_errors.append(str(exc)))
        page.on("websocket", lambda ws: foreign.append(ws.url))
        response = page.goto(gateway.base + "/docs", wait_until="load", timeout=30_000)
        assert response is not None and response.status == 200

        page.wait_for_selector(".opblock .opblock-summary-path", timeout=30_000)
        page.wait_for_function(
            "n => document.querySelectorAll('.opblock').length >= n", arg=len(expected),
            timeout=30_000)
        rendered = set()
        for block in page.query_selector_all(".opblock"):
            method = block.query_selector(".opblock-summary-method")
            path = block.query_selector(".opblock-summary-path")
            assert method is not None and path is not None
            rendered.add((method.inner_text().strip().upper(),
                          path.get_attribute("data-path") or path.inner_text().strip()))
        assert rendered == expected

        text = page.inner_text("#ui")
        assert document["info"]["title"] in text
        for summary in ("Create a network", "List the DNS records the caller may see"):
            assert summary in text, summary
        for path in ("/v1/networks", "/v1/networks/{network_id}/ports", "/v1/policies",
                     "/v1/load-balancers", "/v1/gateways/{gateway_id}"):
            assert (("GET", path) in rendered), path

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "docs-page.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
    finally:
        context.close()

    assert not foreign, f"the page reached beyond the gateway: {foreign}"
    assert not page_errors, page_errors
    # The page, its stylesheet and script, the document; /favicon.ico is Chromium's own.
    assert gateway.base + "/openapi.json" in requested
    assert gateway.base + "/docs/static/swagger-ui-bundle.js" in requested
    assert not [f for f in failed if "/favicon.ico" not in f], failed
