"""Clients that keep writing while the northbound database fails, and what they saw.

`WriteLoad` runs a few writer threads against a gateway app, each with a tenant and a
network of its own, PATCHing the network's description over and over (one transaction each;
nothing accumulates, and writers never contend for a row). Every answer is recorded with the
time its request was sent and answered. A 503 is retried after a short pause, as a client
that wants its write done soon would; every other status than 200 and 503 is an error.

`window()` reduces the answers around one failure to the figures the failover tests bound:
the span from the first 503 to the last, and the time until a request sent after the
failure succeeded.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from helpers.api import ApiClient, unique


@dataclass(frozen=True)
class Answer:
    writer: int
    sent: float  # time.monotonic() when the request was sent
    answered: float
    status: int


@dataclass(frozen=True)
class Window:
    unavailable: int  # 503 answers after the failure
    window: float  # first 503 answered .. last 503 answered (0 without any)
    recovered: float  # failure .. first 2xx of a request sent after the failure
    longest: float  # the longest single request after the failure

    def __str__(self) -> str:
        return (f"503 window {self.window:.2f} s ({self.unavailable} x 503), recovered "
                f"after {self.recovered:.2f} s, longest request {self.longest:.2f} s")


class WriteLoad:
    def __init__(self, app: Any, writers: int = 4, pause: float = 0.01,
                 retry_pause: float = 0.05, request_bound: float = 10.0) -> None:
        self.app, self.writers = app, writers
        self.pause, self.retry_pause, self.request_bound = pause, retry_pause, request_bound
        self.answers: list[Answer] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> WriteLoad:
        for n in range(self.writers):
            api = ApiClient(self.app.test_client(), unique("load"))
            network = api.network(cidr=f"10.{180 + n}.0.0/24")
            thread = threading.Thread(target=self._write, args=(n, api, network["id"]),
                                      name=f"writer-{n}", daemon=True)
            self._threads.append(thread)
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.request_bound + 5)

    def _write(self, n: int, api: ApiClient, network_id: str) -> None:
        count = 0
        while not self._stop.is_set():
            count += 1
            sent = time.monotonic()
            try:
                resp = api.patch(f"/v1/networks/{network_id}", {"description": f"w{count}"})
                status = resp.status_code
            except Exception as exc:  # a 500 in testing mode propagates
                status, resp = 0, None
                self._error(f"writer {n}: {exc!r}")
            answered = time.monotonic()
            with self._lock:
                self.answers.append(Answer(n, sent, answered, status))
            if answered - sent > self.request_bound:
                self._error(f"writer {n}: {status} after {answered - sent:.1f} s")
            if status == 503:
                assert resp is not None
                if int(resp.headers.get("Retry-After", "0")) < 1:
                    self._error(f"writer {n}: 503 without Retry-After")
                time.sleep(self.retry_pause)
            elif status == 200:
                time.sleep(self.pause)
            elif resp is not None:
                self._error(f"writer {n}: {status} {resp.data[:300]!r}")
                time.sleep(self.retry_pause)

    def _error(self, text: str) -> None:
        with self._lock:
            self.errors.append(text)

    def since(self, start: float, until: float | None = None) -> list[Answer]:
        with self._lock:
            return [a for a in self.answers
                    if a.answered >= start and (until is None or a.answered <= until)]

    def recovered(self, since: float) -> bool:
        """Every writer had a request sent after `since` succeed."""
        done = {a.writer for a in self.since(since) if a.sent >= since and a.status == 200}
        return len(done) == self.writers

    def wait_recovered(self, since: float, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.recovered(since):
            if time.monotonic() > deadline or self._stop.is_set():
                return False
            time.sleep(0.02)
        return True


def window(answers: Iterable[Answer], failed: float, sent_after: float | None = None) -> Window:
    """The figures of one failure at `failed`; `sent_after` (default: `failed`) is when a
    successful request proves the gateway recovered (a request sent before the failure
    may still have been answered by the database that failed)."""
    after = [a for a in answers if a.answered >= failed]
    errors = sorted(a.answered for a in after if a.status == 503)
    cutoff = failed if sent_after is None else sent_after
    ok = [a.answered for a in after if a.status == 200 and a.sent >= cutoff]
    return Window(
        unavailable=len(errors),
        window=errors[-1] - errors[0] if errors else 0.0,
        recovered=(min(ok) - failed) if ok else float("inf"),
        longest=max((a.answered - a.sent for a in after), default=0.0),
    )


def spread(values: Iterable[float]) -> str:
    """min/median/max of some seconds, for the report lines."""
    data = sorted(values)
    if not data:
        return "-"
    return f"{data[0]:.2f}/{statistics.median(data):.2f}/{data[-1]:.2f} s"
