"""`infer-dp`: one pipeline per GPU, the videos split across ranks.

Phases: every rank warms up; rank 0 alone then makes `iterations` videos (the one-GPU baseline,
on the same machine in the same job, so power, clocks and host contention are the real ones);
then every rank makes its share of `iterations x world_size` videos at once. Scaling efficiency
(computed at merge) is total videos/hour over world_size times the baseline's.
"""

from __future__ import annotations

import time

from svdops.bench.config import PointConfig
from svdops.bench.multi.rank import RankContext
from svdops.bench.multi.video import VideoRunner


def run(ctx: RankContext, point: PointConfig) -> None:
    runner = VideoRunner(ctx, point)
    for w in range(point.warmup):
        runner.timed("warmup", w, seed=point.seed, warmup=True)
    if ctx.world_size > 1:
        ctx.barrier("every rank warmed up")
        if ctx.rank == 0:
            for i in range(point.iterations):
                runner.timed("solo", i, seed=point.seed + i)
        ctx.barrier("rank 0's one-GPU baseline")
    total = point.iterations * ctx.world_size
    mine = list(range(ctx.rank, total, ctx.world_size))
    start = time.perf_counter()
    for video in mine:
        runner.timed("parallel", video, seed=point.seed + video)
    wall = time.perf_counter() - start
    ctx.set_result(
        parallel_wall_s=wall,
        parallel_calls=len(mine),
        videos=len(mine) * point.videos_per_call,
        videos_per_call=point.videos_per_call,
        total_calls=total,
    )
    # Ranks that finish early wait here, so none tears the process group down under the others.
    ctx.barrier("the other ranks' share of the videos")
