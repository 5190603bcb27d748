"""Running independent blocks of work on CPU threads, one single-threaded op stream per core.

The loss walks over the batch a few maps at a time so that temporaries stay in cache. Issued from one
thread, each of those small ops would fork and join torch's intra-op thread pool; on a busy machine every
join waits for a preempted thread, and the loss ran several times slower than the unblocked version.
Instead, blocks go to a small thread pool (torch releases the GIL inside ops) while torch's intra-op
parallelism is set to 1, then restored. CUDA tensors and single-threaded runs use a plain loop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
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


def run_blocks(work: Callable[[Block], None], blocks: Sequence[Block], device: torch.device) -> None:
    """Call ``work(block)`` for every block; blocks must write to disjoint outputs."""
    threads = torch.get_num_threads()
    in_worker = threading.current_thread().name.startswith("himtok-hml")
    if device.type != "cpu" or threads == 1 or len(blocks) < 2 or in_worker:
        for block in blocks:
            work(block)
        return
    pool = _executor(min(threads, len(blocks)))
    torch.set_num_threads(1)
    try:
        for future in [pool.submit(work, block) for block in blocks]:
            future.result()
    finally:
        torch.set_num_threads(threads)
