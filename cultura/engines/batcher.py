"""Gathering concurrent calls into batches for an engine's one worker thread.

Callers submit items and await their futures. A task on the callers' event loop takes the first
waiting item, then whatever else arrives within ``wait_s`` (up to ``max_size`` items), drops the
items whose callers left (their futures were cancelled: a client hung up, a deadline passed), and
runs the batch on the executor. A batch that raises is run again one item at a time, so only the
item that caused the failure gets the error.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class Pending:
    """An item in the queue, the caller's future, and a flag the worker thread reads to stop work
    for the item once its caller is gone."""

    item: Any
    future: asyncio.Future = field(repr=False)
    gone: threading.Event = field(default_factory=threading.Event, repr=False)

    def watch(self) -> None:
        """Raise the ``gone`` flag when the future is cancelled (the caller went away)."""
        self.future.add_done_callback(lambda f: self.gone.set() if f.cancelled() else None)

    def settle(self, result: Any = None, exc: BaseException | None = None) -> None:
        """Hand ``result`` (or ``exc``) to the caller, unless it has gone; a None result is not handed
        (the item was dropped because its caller left)."""
        if self.future.done():
            return
        if exc is not None:
            self.future.set_exception(exc)
        elif result is not None:
            self.future.set_result(result)


class MicroBatcher:
    """Batches of submitted items for ``run`` (called on ``executor`` with a list of :class:`Pending`,
    it returns one result per item, None for an item it dropped); see the module docstring.

    ``cancelled`` counts items dropped from the queue because their callers left; ``retried`` the
    failed batches run again one item at a time.
    """

    def __init__(self, run: Callable[[list[Pending]], Sequence[Any]], executor: Executor,
                 max_size: int, wait_s: float, what: str = "requests"):
        self.run, self.executor, self.max_size, self.wait_s, self.what = run, executor, max_size, wait_s, what
        self.cancelled = 0
        self.retried = 0
        self._queue: asyncio.Queue[Pending] | None = None
        self._worker: asyncio.Task | None = None

    def submit(self, items: Sequence[Any]) -> list[Pending]:
        """Queue ``items`` (from a coroutine on the loop that will await them); returns their
        :class:`Pending` entries, whose futures give the results in order."""
        loop = asyncio.get_running_loop()
        if self._worker is None or self._worker.done():  # the first call, or the first on a new loop
            self._queue = asyncio.Queue()
            self._worker = loop.create_task(self._loop())
        pending = [Pending(item, loop.create_future()) for item in items]
        for p in pending:
            p.watch()
            self._queue.put_nowait(p)
        return pending

    def close(self) -> None:
        """Stop the batching task."""
        if self._worker is not None:
            self._worker.cancel()
            self._worker = None

    def _live(self, batch: list[Pending]) -> list[Pending]:
        """The items of ``batch`` whose callers still wait (the others are counted as cancelled)."""
        live = [p for p in batch if not p.future.done()]
        self.cancelled += len(batch) - len(live)
        return live

    async def _next_batch(self, queue: asyncio.Queue[Pending]) -> list[Pending]:
        """The first waiting item and what joins it within ``wait_s``, live items only."""
        loop = asyncio.get_running_loop()
        batch = self._live([await queue.get()])
        deadline = loop.time() + self.wait_s
        while len(batch) < self.max_size:
            timeout = deadline - loop.time()
            if timeout <= 0:
                while not queue.empty() and len(batch) < self.max_size:
                    batch += self._live([queue.get_nowait()])
                break
            try:
                batch += self._live([await asyncio.wait_for(queue.get(), timeout)])
            except asyncio.TimeoutError:
                break
        return self._live(batch)

    async def _loop(self) -> None:
        queue = self._queue
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch(queue)
            if not batch:
                continue
            try:
                results = await loop.run_in_executor(self.executor, self.run, batch)
            except Exception as exc:
                if len(batch) == 1:
                    batch[0].settle(exc=exc)
                    continue
                # one item may have failed them all: each alone, so only the culprit fails
                log.warning("a batch of %d %s failed (%s); running each alone", len(batch), self.what, exc)
                self.retried += 1
                for p in self._live(batch):
                    try:
                        [result] = await loop.run_in_executor(self.executor, self.run, [p])
                    except Exception as alone:
                        p.settle(exc=alone)
                    else:
                        p.settle(result)
                continue
            for p, result in zip(batch, results):
                p.settle(result)
