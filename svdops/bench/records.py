"""What a single-GPU bench measured, point by point, and the documents and tables it writes from it
(results.json, iterations.csv, steps.csv).
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from svdops.bench.config import BenchRequest, PointConfig, largest_fitting, load_scenario, parse_sweep
from svdops.bench.environment import dense_peak_tflops
from svdops.bench.models import Weights
from svdops.bench.optimize import Optimization
from svdops.bench.optimize.compile_cache import CompileCache
from svdops.bench.stats import describe_stat
from svdops.runs.documents import (
    RESULTS_SCHEMA,
    Config,
    LargestFitting,
    OptimizeRecord,
    PointDoc,
    PointSummary,
    Results,
    TelemetryRecord,
    TelemetrySummary,
    WeightsRecord,
)
from svdops.telemetry import TelemetrySample, TelemetrySampler, samples_between, summarize

ITERATION_COLUMNS = (
    "point", "iteration", "warmup", "frames", "height", "width", "steps", "decode_chunk", "videos_per_call",
    "t_start_unix", "clip_s", "vae_encode_s", "unet_s", "unet_step_median_s", "decode_s", "e2e_s", "other_s",
    "peak_allocated_gib", "peak_reserved_gib", "nan_frac", "black_frames", "frames_out", "energy_j",
)  # fmt: skip


STEP_COLUMNS = ("point", "iteration", "warmup", "step", "step_s", "t_end_unix")


@dataclass
class IterationRecord:
    iteration: int
    warmup: bool
    steps: int
    t_start_unix: float
    t_start_mono: float
    t_end_mono: float
    stages_s: dict[str, float]
    steps_s: list[float]
    step_end_unix: list[float]
    e2e_s: float
    peak_allocated_gib: float | None
    peak_reserved_gib: float | None
    nan_frac: float | None
    black_frames: int | None
    frames_out: int | None
    energy_j: float | None = None


@dataclass
class PointResult:
    index: int
    point: PointConfig
    status: str = "not_run"  # ok | oom | failed | interrupted | not_run
    error: str | None = None
    records: list[IterationRecord] = field(default_factory=list)
    flops_per_step: int | None = None
    summary: PointSummary = field(default_factory=PointSummary)
    dynamo: dict[str, Any] | None = None  # what torch.compile did at this point (compiled runs)

    @property
    def timed(self) -> list[IterationRecord]:
        return [r for r in self.records if not r.warmup]


@dataclass
class BenchOutcome:
    path: Path
    status: str  # ok | partial | oom | failed | interrupted
    results: Results
    points: list[PointResult]

    @property
    def any_ok(self) -> bool:
        return any(p.status == "ok" for p in self.points)


@dataclass
class RunState:
    started: datetime
    notes: list[str]
    weights: Weights | None = None
    build_s: float | None = None
    interrupted: bool = False
    optimization: Optimization | None = None
    compile_cache: CompileCache | None = None  # for a plain --compile


def results_document(
    request: BenchRequest,
    device: str,
    gpu_name: str | None,
    results: list[PointResult],
    run: RunState,
    sampler: TelemetrySampler,
    use_telemetry: bool,
) -> Results:
    fits = largest_fitting([(r.point, r.status) for r in results]) if request.sweep else None
    largest = next((LargestFitting(r.index, r.point.to_dict()) for r in results if r.point is fits), None)
    return Results(
        schema=RESULTS_SCHEMA,
        kind="single",
        status=overall_status(results, run.interrupted),
        scenario=request.scenario,
        device=device,
        gpu=gpu_name,
        weights=weights_document(run.weights),
        started_at=run.started.isoformat(),
        finished_at=datetime.now(UTC).isoformat(),
        build_s=run.build_s,
        optimize=optimize_document(request, results, run),
        points=[point_document(r) for r in results],
        largest_fitting=largest,
        telemetry=TelemetryRecord(
            enabled=use_telemetry,
            available=sampler.available,
            gpu=sampler.gpu_name,
            note=sampler.note,
            hz=request.telemetry_hz,
            sampler_cpu_s=round(sampler.thread_cpu_s, 4),  # what sampling cost this process
            summary=telemetry_summary(sampler.samples),
        ),
        notes=list(run.notes),
    )


def weights_document(weights: Weights | None) -> WeightsRecord | None:
    return None if weights is None else WeightsRecord(**weights.to_dict())


def telemetry_summary(samples: list[TelemetrySample]) -> TelemetrySummary:
    # summarize() is the telemetry module's own reduction; reading it back checks it against the type.
    return TelemetrySummary.checked(summarize(samples), "telemetry summary")


def config_document(request: BenchRequest, points: list[PointConfig], weights: WeightsRecord | None) -> Config:
    return Config(
        request=dataclasses.asdict(request),
        scenario=dataclasses.asdict(load_scenario(request.scenario)),
        sweep_axes=dict(parse_sweep(request.sweep)),
        weights=weights,
        points=[p.to_dict() for p in points],
    )


def optimize_document(request: BenchRequest, results: list[PointResult], run: RunState) -> OptimizeRecord:
    """What --optimize applied and declined, the compile cache, and the quality gate's verdict."""
    compile_s = next((r.summary.compile_s for r in results if r.summary.compile_s is not None), None)
    if run.optimization is not None:
        record = OptimizeRecord.checked(run.optimization.to_dict(compile_s), "optimize")
        record.setup_s = run.optimization.setup_s
        return record
    return OptimizeRecord(
        level="none",
        compile_mode=request.compile_mode,
        levers=[],
        applied=["compile-unet"] if request.compile else [],
        compile_cache=run.compile_cache.report(compile_s) if run.compile_cache else None,
        quality_gate={"checked": False, "why": "the reference pipeline is what the gate compares against"},
    )


def overall_status(results: list[PointResult], interrupted: bool) -> str:
    if interrupted:
        return "interrupted"
    statuses = {r.status for r in results}
    if statuses == {"ok"}:
        return "ok"
    if "ok" in statuses:
        return "partial"
    if statuses == {"oom"}:
        return "oom"
    return "failed"


def summarize_point(
    result: PointResult, samples: list[TelemetrySample], gpu_name: str | None, compiled: bool = False
) -> PointSummary:
    timed = result.timed
    point = result.point
    summary = PointSummary(
        iterations=len(timed),
        warmup_iterations=len(result.records) - len(timed),
        unet_tflop_per_step=None if result.flops_per_step is None else result.flops_per_step / 1e12,
        traceback=result.summary.traceback,
        compile=result.dynamo,
    )
    if not timed:
        return summary
    summary.clip_s = describe_stat([r.stages_s.get("clip") for r in timed])
    summary.vae_encode_s = describe_stat([r.stages_s.get("vae_encode") for r in timed])
    summary.unet_s = describe_stat([r.stages_s.get("unet") for r in timed])
    summary.decode_s = describe_stat([r.stages_s.get("decode") for r in timed])
    summary.e2e_s = describe_stat([r.e2e_s for r in timed])
    summary.unet_step_s = describe_stat([s for r in timed for s in r.steps_s])
    summary.first_step_s = describe_stat([r.steps_s[0] for r in timed if r.steps_s])
    e2e = summary.e2e_s.median
    videos = point.videos_per_call
    summary.videos_per_hour = 3600.0 * videos / e2e if e2e else None
    summary.frames_per_s = point.frames * videos / e2e if e2e else None
    step = summary.unet_step_s.median
    tflops = result.flops_per_step / step / 1e12 if result.flops_per_step and step else None
    summary.unet_tflops = tflops
    peak, source = dense_peak_tflops(gpu_name, point.dtype)
    summary.peak_tflops = peak
    summary.peak_tflops_source = source
    summary.mfu = tflops / peak if tflops and peak else None
    allocated = [r.peak_allocated_gib for r in timed if r.peak_allocated_gib is not None]
    reserved = [r.peak_reserved_gib for r in timed if r.peak_reserved_gib is not None]
    summary.peak_allocated_gib = max(allocated) if allocated else None
    summary.peak_reserved_gib = max(reserved) if reserved else None
    nan = [r.nan_frac for r in timed if r.nan_frac is not None]
    summary.nan_frac_max = max(nan) if nan else None
    summary.black_frames = sum(r.black_frames or 0 for r in timed)
    summary.output_ok = bool(nan) and max(nan) == 0.0 and summary.black_frames == 0
    energies = [r.energy_j for r in timed if r.energy_j is not None]
    summary.energy_j_per_video = statistics.median(energies) / videos if energies else None
    if compiled and result.records and result.records[0].warmup and result.records[0].steps_s and step:
        # The first UNet call compiles; what it took beyond a normal step is the compile time.
        summary.compile_s = result.records[0].steps_s[0] - step
    window = samples_between(samples, timed[0].t_start_mono, timed[-1].t_end_mono)
    telemetry = telemetry_summary(window)
    summary.telemetry = telemetry
    summary.nvml_mem_used_mib_max = telemetry.mem_used_mib_max
    summary.throttled = telemetry.throttled if window else None
    return summary


def point_document(result: PointResult) -> PointDoc:
    return PointDoc(
        point=result.index,
        config=result.point.to_dict(),
        status=result.status,
        error=result.error,
        iterations_done=len(result.timed),
        summary=result.summary,
    )


def iteration_rows(results: list[PointResult]) -> Iterator[list[Any]]:
    for r in results:
        p = r.point
        for rec in r.records:
            staged = sum(rec.stages_s.values())
            yield [
                r.index, rec.iteration, rec.warmup, p.frames, p.height, p.width, rec.steps, p.decode_chunk,
                p.videos_per_call, rec.t_start_unix, rec.stages_s.get("clip"), rec.stages_s.get("vae_encode"),
                rec.stages_s.get("unet"), statistics.median(rec.steps_s) if rec.steps_s else None,
                rec.stages_s.get("decode"), rec.e2e_s, rec.e2e_s - staged, rec.peak_allocated_gib,
                rec.peak_reserved_gib, rec.nan_frac, rec.black_frames, rec.frames_out, rec.energy_j,
            ]  # fmt: skip


def step_rows(results: list[PointResult]) -> Iterator[list[Any]]:
    for r in results:
        for rec in r.records:
            for step, (seconds, t_end) in enumerate(zip(rec.steps_s, rec.step_end_unix, strict=True)):
                yield [r.index, rec.iteration, rec.warmup, step, seconds, t_end]
