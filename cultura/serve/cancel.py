"""Cancelling a request's work by its id, in every replica it reached.

Serve cancels the downstream calls of a request whose client left, but only best effort: a call
that is being handed to a replica at the moment of cancellation can be dispatched all the same and
run to its end (ray-project/ray#52533), which is exactly when a client hangs up after the first
chunk. So the graph also cancels by id. Every call that does model work carries the HTTP request's
id (a draft ``<id>/<continent>``); each replica keeps its running calls in :class:`Calls`, and when
a request is abandoned (client gone, deadline passed) the ingress calls ``cancel(id)`` on every
deployment the request reached. ``cancel`` cancels the matching tasks (the engine then drops their
rows from its queue and decode loop) and remembers the id for a while, so a call that arrives late
is refused at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator


def _within(request_id: str, cancelled: str) -> bool:
    """Whether ``request_id`` is ``cancelled`` or one of its parts (``<id>/<part>``)."""
    return request_id == cancelled or request_id.startswith(cancelled + "/")


class Calls:
    """The calls running in one replica, by request id; see the module docstring."""

    def __init__(self, remember_s: float = 600.0):
        self.remember_s = remember_s
        self._running: dict[str, set[asyncio.Task]] = {}
        self._cancelled: dict[str, float] = {}  # id -> when it was cancelled (monotonic seconds)

    def cancelled(self, request_id: str) -> bool:
        """Whether ``request_id`` (or the request it is part of) was cancelled lately."""
        return any(_within(request_id, c) for c in self._cancelled)

    @contextlib.contextmanager
    def track(self, request_id: str | None) -> Iterator[None]:
        """Run the current task as part of ``request_id`` (None: not tracked); a request already
        cancelled raises :class:`asyncio.CancelledError` at once."""
        if request_id is None:
            yield
            return
        if self.cancelled(request_id):
            raise asyncio.CancelledError(f"request {request_id} was cancelled")
        task = asyncio.current_task()
        self._running.setdefault(request_id, set()).add(task)
        try:
            yield
        finally:
            tasks = self._running.get(request_id, set())
            tasks.discard(task)
            if not tasks:
                self._running.pop(request_id, None)

    def cancel(self, request_id: str) -> int:
        """Cancel the running calls of ``request_id`` and its parts, and refuse later ones for
        ``remember_s``; returns how many calls were cancelled."""
        now = time.monotonic()
        self._cancelled = {k: t for k, t in self._cancelled.items() if now - t < self.remember_s}
        self._cancelled[request_id] = now
        count = 0
        for rid, tasks in list(self._running.items()):
            if _within(rid, request_id):
                for task in tasks:
                    count += int(task.cancel())
        return count


_sent: set[asyncio.Future] = set()  # cancel calls in flight (a task nobody holds may be collected)


def cancel_in(handles: list, request_id: str) -> None:
    """Ask every deployment in ``handles`` to cancel ``request_id``'s calls (``cancel.remote``),
    without waiting: the caller is usually being cancelled itself."""
    if not handles:
        return
    sent = asyncio.ensure_future(asyncio.gather(*(h.cancel.remote(request_id) for h in handles),
                                                return_exceptions=True))
    _sent.add(sent)
    sent.add_done_callback(_sent.discard)
