"""Tiny helpers over ``torch.distributed``: every function is a no-op (or a plain copy) when no process group
is initialised, so library code can call them unconditionally.

They are collectives: under torch.distributed every rank must call them in the same order. Tensors must live
on a device the backend supports (CPU for gloo, CUDA for NCCL).
"""

from __future__ import annotations

import torch.distributed as dist
from torch import Tensor


def is_distributed() -> bool:
    """True when a process group with more than one rank is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_sum(tensor: Tensor) -> Tensor:
    """The sum of ``tensor`` over all ranks, as a new tensor (the input is left untouched)."""
    total = tensor.clone()
    if is_distributed():
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total


def broadcast_(tensor: Tensor, src: int = 0) -> Tensor:
    """Overwrite ``tensor`` in place with rank ``src``'s copy; returns it."""
    if is_distributed():
        dist.broadcast(tensor, src=src)
    return tensor
