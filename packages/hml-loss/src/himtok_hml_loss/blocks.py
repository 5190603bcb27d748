"""Running independent blocks of work on CPU threads, one single-threaded op stream per core.

The loss walks over the batch a few maps at a time so that temporaries stay in cache. Issued from one
thread, each of those small ops would fork and join torch's intra-op thread pool; on a busy machine every
join waits for a preempted thread, and the loss ran several times slower than the unblocked version.
Instead, blocks go to a small thread pool (torch releases the GIL inside ops) while torch's intra-op
parallelism is set to 1, then restored (so another thread running torch CPU ops at the same time runs
single-threaded for that moment). CUDA tensors use a plain loop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

import torch

Block = TypeVar("Block")

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def _executor(size: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size != size:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="himtok-hml")
            _pool_size = size
        return _pool


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run the enclosed torch CPU ops with intra-op parallelism 1 (restored afterwards)."""
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _without_autograd(work: Callable[[Block], None], block: Block) -> None:
    # Grad mode is per thread: a pool thread would otherwise record a graph for block work that is never
    # differentiated (and writes into shared outputs).
    with torch.no_grad():
        work(block)


def run_blocks(work: Callable[[Block], None], blocks: Sequence[Block], device: torch.device) -> None:
    """Call ``work(block)`` for every block, without autograd; blocks must write to disjoint outputs.

    Blocks are small by construction, so on CPU each runs single-threaded, several at a time when there are
    several blocks and several threads.
    """
    threads = torch.get_num_threads()
    in_worker = threading.current_thread().name.startswith("himtok-hml")
    if device.type != "cpu" or in_worker:
        for block in blocks:
            _without_autograd(work, block)
        return
    with single_threaded():
        if len(blocks) < 2 or threads == 1:
            for block in blocks:
                _without_autograd(work, block)
        else:
            pool = _executor(min(threads, len(blocks)))
            for future in [pool.submit(_without_autograd, work, block) for block in blocks]:
                future.result()
