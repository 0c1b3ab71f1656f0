"""One rank's pipeline for the inference workloads: the single-GPU bench's builder, clock and image.

Every rank builds the same random weights (the builder seeds from the scenario's seed), as the
replicas of a data-parallel service would load the same checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from svdops.bench.config import PointConfig
from svdops.bench.invoke import conditioning_image, pipeline_call
from svdops.bench.models import check_shape, prepare_pipeline
from svdops.bench.multi.rank import RankContext, record_row
from svdops.bench.timing import StageClock


class VideoRunner:
    def __init__(self, ctx: RankContext, point: PointConfig) -> None:
        self.ctx = ctx
        self.point = point
        ctx.heartbeat("building the pipeline")
        t0 = time.perf_counter()
        self.pipe, weights = prepare_pipeline(point, ctx.spec["bench"].get("weights"))
        ctx.log.doc["build_s"] = time.perf_counter() - t0
        ctx.log.doc["weights"] = weights.to_dict()
        check_shape(self.pipe, point)
        self.activity = "building"
        self.clock = StageClock(
            self.pipe, ctx.sync, mark=ctx.mark, on_step=lambda i: ctx.heartbeat(f"{self.activity}: step {i}")
        )
        self.image = conditioning_image(point)
        # Called with the call's step count after each call, before its row is recorded (infer-cfg
        # proves its split ran at every step); raising fails the rank instead of keeping a wrong time.
        self.verify: Callable[[int], None] | None = None

    def call(self, *, seed: int, steps: int, output_type: str = "pil") -> Any:
        """One pipeline call under the stage clock; returns the output frames (or latents)."""
        torch, point = self.ctx.torch, self.point
        generator = torch.Generator(device=point.device).manual_seed(seed)
        self.clock.begin()
        out = self.clock.run(
            lambda: pipeline_call(
                self.pipe,
                self.image,
                point,
                steps=steps,
                generator=generator,
                output_type=output_type,
                callback=self.clock.callback,
            )
        )
        if self.verify is not None:
            self.verify(steps)
        return out.frames

    def timed(
        self, phase: str, iteration: int, *, seed: int, warmup: bool = False, output_type: str = "pil"
    ) -> dict[str, Any]:
        """A recorded call: the row lands in the rank's log before the next call starts."""
        point = self.point
        steps = min(point.steps, point.warmup_steps) if warmup else point.steps
        self.activity = f"{phase} {iteration}"
        self.ctx.mark(f"{phase}:{iteration}:start")
        start_unix = time.time()
        self.call(seed=seed, steps=steps, output_type=output_type)
        self.ctx.mark(f"{phase}:{iteration}:end")
        times = self.clock.current
        row = record_row(
            phase,
            iteration,
            seconds=times.e2e_s or 0.0,
            items=point.videos_per_call,
            warmup=warmup,
            t_start_unix=start_unix,
            stages=times.stages_s,
            steps_s=times.steps_s,
        )
        self.ctx.log.record(row)
        self.ctx.heartbeat(f"{phase} {iteration} done")
        return row
