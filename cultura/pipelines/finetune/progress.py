"""Training progress on the driver: one bar per adapter on a terminal, else a line per logged loss,
fed by a Ray queue the rank-0 workers write to."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from cultura.pipelines.finetune.plan import FinetunePlan


class TrainingProgress:
    """Training progress fed by a Ray queue the rank-0 workers write to: one bar per adapter on a
    terminal, else a line per logged loss."""

    def __init__(self, plan: FinetunePlan, enabled: bool, echo: Callable[[str], None]):
        self.plan, self.enabled, self.echo = plan, enabled, echo
        self.queue = None
        self._bars: dict[str, Any] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> TrainingProgress:
        if not self.enabled:
            return self
        import sys

        from ray.util.queue import Queue
        from tqdm import tqdm

        self.queue = Queue(maxsize=10000, actor_options={"num_cpus": 0})
        if sys.stderr.isatty():
            for i, job in enumerate(self.plan.jobs):
                self._bars[job.name] = tqdm(total=None, desc=f"{job.name:>12}", position=i, unit="step",
                                            dynamic_ncols=True, postfix="starting workers")
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()
        return self

    def _drain(self) -> None:
        from ray.util.queue import Empty

        while not self._stop.is_set():
            try:
                item = self.queue.get(timeout=0.5)
            except Empty:
                continue
            except Exception:  # the queue actor is gone: nothing more will come
                return
            losses = {k: f"{item[k]:.3f}" for k in ("loss", "eval_loss") if k in item}
            bar = self._bars.get(item["name"])
            if bar is None:
                if losses:
                    when = f"step {item['step']}/{item['total']}" if item["step"] else "before training"
                    self.echo(f"{item['name']}: {when} " + " ".join(f"{k}={v}" for k, v in losses.items()))
                continue
            bar.total = item["total"]
            bar.n = item["step"]
            if losses:
                bar.set_postfix(losses, refresh=False)
            elif bar.postfix == "starting workers":
                bar.set_postfix_str("training", refresh=False)
            bar.refresh()

    def write(self, line: str) -> None:
        """Print a line without breaking the bars."""
        if self._bars:
            from tqdm import tqdm

            tqdm.write(line)
        else:
            self.echo(line)

    def done(self, name: str, failed: bool = False) -> None:
        """Mark an adapter's bar finished (or failed)."""
        bar = self._bars.get(name)
        if bar is not None and failed:
            bar.set_postfix_str("failed")

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        for bar in self._bars.values():
            bar.close()
        if self.queue is not None:
            self.queue.shutdown()
