"""Dead-code restart and CodebookStats under torch.distributed: 2 gloo processes on CPU end identical."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

WORKER = textwrap.dedent(
    """
    import sys, torch, torch.distributed as dist
    from himtok_vq import CodebookStats, VectorQuantizer
    rank, world, port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    torch.manual_seed(0)  # identical initial weights, as DDP would broadcast them
    vq = VectorQuantizer(codebook_size=32, dim=12, dead_code_threshold=0.5, usage_decay=0.5)
    stats = CodebookStats(32, num_positions=4)
    torch.manual_seed(100 + rank)  # different data and different restart draws on each rank
    for _ in range(4):
        _, indices, _ = vq(torch.randn(8, 4, 12) + 2.0 * (rank + 1))
        stats.update(indices)
    synced = stats.synced()
    torch.save(
        {
            "weight": vq.embedding.weight.detach(),
            "usage_ema": vq.usage_ema,
            "local_counts": stats.counts,
            "counts": synced.counts,
            "position_counts": synced.position_counts,
            "summary": torch.tensor(list(stats.summary().values()), dtype=torch.float64),
        },
        out,
    )
    dist.destroy_process_group()
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_restart_and_stats_are_synchronised_across_two_gloo_processes(tmp_path: Path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    port = str(_free_port())
    outs = [tmp_path / f"rank{rank}.pt" for rank in range(2)]
    procs = [
        subprocess.Popen([sys.executable, str(script), str(rank), "2", port, str(outs[rank])])
        for rank in range(2)
    ]
    for proc in procs:
        assert proc.wait(timeout=180) == 0
    r0, r1 = (torch.load(out, weights_only=True) for out in outs)
    # Restarts happened (usage reset to 1 for revived codes) and both ranks hold the same codebook,
    # although each rank saw different data and drew different replacement vectors.
    assert r0["usage_ema"].max() >= 1.0
    initial = initial_table()
    assert not torch.equal(r0["weight"], initial)
    assert torch.equal(r0["weight"], r1["weight"])
    assert torch.equal(r0["usage_ema"], r1["usage_ema"])
    # Statistics: each rank counted its own tokens; the synced counts are their sum, identical on both ranks.
    assert not torch.equal(r0["local_counts"], r1["local_counts"])
    assert torch.equal(r0["counts"], r0["local_counts"] + r1["local_counts"])
    assert torch.equal(r0["counts"], r1["counts"])
    assert torch.equal(r0["position_counts"], r1["position_counts"])
    assert int(r0["counts"].sum()) == 2 * 4 * 8 * 4
    assert torch.equal(r0["summary"], r1["summary"])


def initial_table() -> torch.Tensor:
    from himtok_vq import VectorQuantizer

    torch.manual_seed(0)
    return VectorQuantizer(codebook_size=32, dim=12).embedding.weight.detach()
