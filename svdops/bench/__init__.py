"""`svdops bench`: the reference Stable Video Diffusion pipeline on one GPU (or the CPU for `tiny`).

The only package that imports torch, diffusers and transformers, and only inside functions, so
importing `svdops.bench` (for `--help`, or the scenario list) stays fast and works without them.

    config   scenarios (svdops/data/scenarios.yaml), options, sweeps -> PointConfig   (no torch)
    stats    median / p90 / min / max                                                 (no torch)
    models   build the pipeline from the shipped configs, or load a local snapshot
    flops    UNet FLOPs per step on the meta device
    timing   stage and step timing inside one pipeline call
    runner   run_bench(): points, iterations, faults, telemetry, the run folder
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from svdops.bench.config import DEFAULT_SCENARIO, BenchRequest, PointConfig, parse_sweep
from svdops.scenarios import scenario_names

if TYPE_CHECKING:
    from svdops.bench.records import BenchOutcome

__all__ = ["DEFAULT_SCENARIO", "BenchRequest", "PointConfig", "parse_sweep", "run_bench", "scenario_names"]


def run_bench(request: BenchRequest, **kwargs: Any) -> BenchOutcome:
    """See `svdops.bench.runner.run_bench`; imported on first use because it pulls in torch."""
    from svdops.bench.runner import run_bench as run

    return run(request, **kwargs)
