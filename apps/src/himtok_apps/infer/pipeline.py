"""Write one batch's files on a background thread while the model works on the next.

PNG encoding (zlib) releases the GIL, so on a machine with a spare core writing costs the run little wall
time. A results line is appended only once its files exist, in submission order: a killed run never lists a
request whose PNGs are missing, and resume reruns the few that were in flight.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from himtok_apps.infer.engine import Outcome
from himtok_apps.infer.results import ResultsAppender
from himtok_apps.infer.writers import OutputWriter


class WritePipeline:
    """`submit(outcomes)` queues their files; `drain()` waits and appends their lines in order."""

    def __init__(self, writer: OutputWriter, sink: ResultsAppender, workers: int = 1) -> None:
        self.writer = writer
        self.sink = sink
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="infer-write")
        self.batches: deque[list[Future[dict[str, Any]]]] = deque()
        self.on_line: Callable[[dict[str, Any]], None] | None = None
        self.lines = 0
        self.errors = 0
        self.wait_seconds = 0.0  # time the caller spent blocked on writing

    def _write(self, outcome: Outcome) -> dict[str, Any]:
        start = time.perf_counter()
        record = self.writer.write(outcome)
        outcome.times.add("write", time.perf_counter() - start)
        record["timings"] = outcome.times.as_dict()
        return record

    def submit(self, outcomes: Sequence[Outcome]) -> None:
        self.batches.append([self.pool.submit(self._write, outcome) for outcome in outcomes])

    def drain(self, keep_last: bool = False) -> None:
        """Append the lines of every submitted batch (all but the newest with `keep_last`)."""
        start = time.perf_counter()
        while len(self.batches) > (1 if keep_last else 0):
            for future in self.batches.popleft():
                record = future.result()
                self.sink.append(record)
                self.lines += 1
                self.errors += record.get("error") is not None
                if self.on_line is not None:
                    self.on_line(record)
        self.wait_seconds += time.perf_counter() - start

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> WritePipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
