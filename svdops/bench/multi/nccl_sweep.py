"""`nccl`: an all-reduce sweep over message sizes, reported as nccl-tests reports it.

algbw = bytes / time; busbw = algbw x 2(n-1)/n, the share of the data each link must carry in a
ring all-reduce, so busbw is comparable across GPU counts and against the link's own speed.
The time is the slowest rank's mean over the timed iterations (an all-reduce ends when the last
rank has its result). On the CPU the same sweep runs over gloo, for tests and dry runs.
"""

from __future__ import annotations

import time
from typing import Any

from svdops.bench.config import PointConfig
from svdops.bench.multi import NCCL_MAX_BYTES_CPU, NCCL_MAX_BYTES_GPU, NCCL_MIN_BYTES
from svdops.bench.multi.rank import RankContext

FLOAT32_BYTES = 4


def sweep_sizes(max_bytes: int, min_bytes: int = NCCL_MIN_BYTES) -> list[int]:
    """Powers of two from min_bytes up to max_bytes (max_bytes itself last when not a power)."""
    sizes = []
    size = min_bytes
    while size <= max_bytes:
        sizes.append(size)
        size *= 2
    if not sizes or sizes[-1] != max_bytes:
        sizes.append(max_bytes)
    return sizes


def bus_bandwidth(algbw: float, world_size: int) -> float:
    return algbw * 2 * (world_size - 1) / world_size


def _iterations(size: int, gpu: bool) -> tuple[int, int]:
    """(warm-up, timed): enough calls for small messages to average out launch jitter."""
    if not gpu:
        return 1, 3
    if size <= 64 * 2**20:
        return 5, 20
    if size <= 2**30:
        return 2, 10
    return 1, 5


def run(ctx: RankContext, point: PointConfig) -> None:
    torch, dist = ctx.torch, ctx.dist
    gpu = point.device.startswith("cuda")
    max_bytes = ctx.spec.get("nccl_max_bytes") or (NCCL_MAX_BYTES_GPU if gpu else NCCL_MAX_BYTES_CPU)
    expected = ctx.spec.get("expected_busbw_gbps")
    rows: list[dict[str, Any]] = []
    for size in sweep_sizes(max_bytes):
        ctx.heartbeat(f"all-reduce {size} bytes")
        warm, iterations = _iterations(size, gpu)
        data = torch.zeros(max(size // FLOAT32_BYTES, 1), dtype=torch.float32, device=point.device)
        for _ in range(warm):
            dist.all_reduce(data)
        ctx.sync()
        ctx.barrier(f"all-reduce {size} bytes")
        start = time.perf_counter()
        for _ in range(iterations):
            dist.all_reduce(data)
        ctx.sync()
        elapsed = torch.tensor([(time.perf_counter() - start) / iterations], dtype=torch.float64, device=point.device)
        dist.all_reduce(elapsed, op=dist.ReduceOp.MAX)
        seconds = float(elapsed.item())
        nbytes = data.numel() * FLOAT32_BYTES
        algbw = nbytes / seconds / 1e9
        rows.append(
            {
                "size_bytes": nbytes,
                "iterations": iterations,
                "time_s": seconds,
                "algbw_gbps": algbw,
                "busbw_gbps": bus_bandwidth(algbw, ctx.world_size),
                "expected_busbw_gbps": expected,
            }
        )
        del data
        ctx.set_result(nccl=rows, backend=ctx.backend)
