"""A Server-Sent Events client for the tests: GET /v1/events over a real HTTP connection,
parsed by a reader thread into events and comments (heartbeats)."""

from __future__ import annotations

import http.client
import json
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class SseEvent:
    event: str  # created | updated | deleted | reset, or "comment" for ": ..." lines
    id: str | None
    data: Any  # the parsed JSON (the comment's text for comments)
    at: float  # time.monotonic() when it arrived


class Stream:
    def __init__(self, host: str, port: int, token: str, query: str = "",
                 last_event_id: str | None = None, timeout: float = 60) -> None:
        self.conn = http.client.HTTPConnection(host, port, timeout=timeout)
        headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        self.conn.request("GET", "/v1/events" + query, headers=headers)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.headers = {k.lower(): v for k, v in self.resp.getheaders()}
        self.body = b""
        self.items: queue.Queue[SseEvent | None] = queue.Queue()
        self.seen: list[SseEvent] = []
        self.last_id: str | None = None
        self._thread: threading.Thread | None = None
        if self.status == 200:
            self._thread = threading.Thread(target=self._read, daemon=True)
            self._thread.start()
        else:
            self.body = self.resp.read()

    def json(self) -> Any:
        return json.loads(self.body)

    def _read(self) -> None:
        fields: dict[str, str] = {}
        try:
            while True:
                line = self.resp.readline()
                if not line:
                    break
                text = line.decode().rstrip("\n")
                if text.startswith(":"):
                    self.items.put(SseEvent("comment", None, text[1:].strip(), time.monotonic()))
                elif text == "":
                    if "data" in fields:
                        self.items.put(SseEvent(fields.get("event", "message"), fields.get("id"),
                                                json.loads(fields["data"]), time.monotonic()))
                    fields = {}
                else:
                    name, _, value = text.partition(":")
                    fields[name] = value[1:] if value.startswith(" ") else value
        except (OSError, ValueError, AttributeError, http.client.HTTPException):
            # AttributeError: http.client when close() ran while this thread was reading
            pass
        finally:
            self.items.put(None)  # the stream ended

    def next(self, timeout: float = 10, comments: bool = False) -> SseEvent | None:
        """The next event (None when the stream ended); raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                item = self.items.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError("no event in time") from None
            if item is None:
                self.items.put(None)
                return None
            if item.event == "comment" and not comments:
                continue
            self.seen.append(item)
            if item.id is not None:
                self.last_id = item.id
            return item

    def until(self, done: Callable[[SseEvent], bool], timeout: float = 15) -> list[SseEvent]:
        """Events up to and including the first for which done() holds."""
        deadline = time.monotonic() + timeout
        got = []
        while True:
            item = self.next(max(0.01, deadline - time.monotonic()))
            if item is None:
                raise AssertionError(f"stream ended; got {[(e.event, e.data) for e in got]}")
            got.append(item)
            if done(item):
                return got

    def quiet(self, seconds: float) -> list[SseEvent]:
        """Whatever events arrive within `seconds` (heartbeats left out)."""
        got = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                item = self.next(max(0.01, deadline - time.monotonic()))
            except TimeoutError:
                break
            if item is None:
                break
            got.append(item)
        return got

    def close(self) -> None:
        try:
            if self.conn.sock is not None:
                self.conn.sock.shutdown(2)
        except OSError:
            pass
        self.conn.close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
