"""`svdops bench`: run the reference pipeline point by point, keep every finished iteration, store the run.

Faults are results: an out-of-memory at one configuration is recorded as "oom" and a sweep goes
on; Ctrl-C (or SIGTERM) ends the run as "interrupted" with every finished iteration kept. The run
folder is committed in both cases; only an exception that is a bug leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import platform
import signal
import socket
import statistics
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from svdops import __version__
from svdops.bench.config import BenchRequest, PointConfig, largest_fitting, load_scenario, parse_sweep, resolve_points
from svdops.bench.flops import unet_flops
from svdops.bench.models import Weights, check_shape, import_stack, prepare_pipeline
from svdops.bench.optimize.quality import QualityGateFailed
from svdops.bench.stats import describe
from svdops.bench.timing import StageClock, inspect_frames
from svdops.errors import BadInputError
from svdops.store import RunWriter, run_name
from svdops.telemetry import (
    MARK_COLUMNS,
    TELEMETRY_COLUMNS,
    TelemetrySampler,
    energy_joules,
    samples_between,
    summarize,
)

RESULTS_SCHEMA = "svdops.bench.results/1"
Progress = Callable[[str, dict[str, Any]], None]

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
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def timed(self) -> list[IterationRecord]:
        return [r for r in self.records if not r.warmup]


@dataclass
class BenchOutcome:
    path: Path
    status: str  # ok | partial | oom | failed | interrupted
    results: dict[str, Any]
    points: list[PointResult]

    @property
    def any_ok(self) -> bool:
        return any(p.status == "ok" for p in self.points)


# --- device ------------------------------------------------------------------------------------


def resolve_device(request: BenchRequest, torch: Any) -> str:
    scenario = load_scenario(request.scenario)
    has_cuda = bool(torch.cuda.is_available())
    hint = (
        f"run `svdops bench --scenario tiny` (seconds on a CPU), or `--scenario {scenario.name} --device cpu` "
        "(the full model on the CPU: very slow); `svdops check` says why no GPU is visible"
    )
    requested = request.device
    if requested is None:
        if has_cuda:
            requested = "cuda"
        elif scenario.needs_gpu:
            message = f"no CUDA GPU is visible to torch, and scenario {scenario.name!r} needs one"
            raise BadInputError(message, where="--scenario", hint=hint)
        else:
            return "cpu"
    if requested == "cpu":
        return "cpu"
    if requested == "cuda" or requested.startswith("cuda:"):
        if not has_cuda:
            raise BadInputError(f"--device {requested}: no CUDA GPU is visible to torch", where="--device", hint=hint)
        index = int(requested.partition(":")[2] or torch.cuda.current_device())
        if index >= torch.cuda.device_count():
            raise BadInputError(
                f"--device {requested}: torch sees {torch.cuda.device_count()} GPU(s)",
                where="--device",
                hint="GPUs are numbered from 0 (CUDA_VISIBLE_DEVICES renumbers them)",
            )
        return f"cuda:{index}"
    raise BadInputError(f"unsupported device {requested!r}", where="--device", hint="use cuda, cuda:N or cpu")


def _check_dtype(point: PointConfig) -> None:
    if point.device == "cpu" and point.dtype == "fp16":
        raise BadInputError(
            "fp16 on the CPU is slow and not supported by every layer of this pipeline",
            where="--dtype",
            hint="use --dtype fp32 (the CPU default) or --dtype bf16",
        )


def is_oom(exc: BaseException, torch: Any) -> bool:
    oom_type = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """A preempted cloud instance gets SIGTERM: treat it like Ctrl-C so finished work is kept."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# --- facts, versions, peak ----------------------------------------------------------------------


def gather_local_facts(use_nvml: bool) -> tuple[Any, str | None]:
    """(HostFacts or None, note). A benchmark never fails because the facts could not be gathered."""
    from svdops.probe.gather import gather_facts
    from svdops.shell import LocalShell

    try:
        # This interpreter's packages are the ones the benchmark runs with, not python3's on PATH.
        return gather_facts(LocalShell(), python=sys.executable, use_nvml=use_nvml), None
    except Exception as exc:  # a probe bug must not cost a benchmark run
        return None, f"host facts not recorded: gathering failed: {type(exc).__name__}: {exc}"


def dense_peak_tflops(gpu_name: str | None, dtype: str) -> tuple[float | None, str]:
    """The GPU's dense tensor-core peak for this dtype (TFLOP/s) and where the figure comes from.

    No peak (so no MFU) for the CPU, for a GPU the knowledge base does not list, or for fp32,
    whose tensor-core rate depends on TF32 settings rather than on the card alone.
    """
    if not gpu_name:
        return None, "no GPU"
    from svdops.knowledge import find_gpu_spec

    spec = find_gpu_spec(gpu_name)
    if spec is None:
        return None, f"{gpu_name} is not in svdops/knowledge/gpus.yaml"
    peak = {"fp16": spec.fp16_tflops, "bf16": spec.bf16_tflops}.get(dtype)
    if not peak:
        return None, f"no dense {dtype} tensor peak for {spec.name} in svdops/knowledge/gpus.yaml"
    return float(peak), f"svdops/knowledge/gpus.yaml: {spec.name} {dtype} dense ({spec.source})"


def collect_versions(torch: Any, sampler: TelemetrySampler, facts: Any, device: str) -> dict[str, Any]:
    import diffusers
    import transformers

    try:
        import accelerate

        accelerate_version: str | None = accelerate.__version__
    except ImportError:
        accelerate_version = None
    driver = sampler.driver_version
    if driver is None and facts is not None and facts.driver.userspace_version is not None:
        driver = str(facts.driver.userspace_version)
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        "svdops": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cudnn": cudnn,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "accelerate": accelerate_version,
        "driver": driver,
        "gpu": torch.cuda.get_device_name(device) if device.startswith("cuda") else None,
    }


def conditioning_image(point: PointConfig) -> Any:
    """A deterministic, structured RGB picture at the output size (no file, nothing downloaded)."""
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0 : point.height, 0 : point.width]
    rng = np.random.default_rng(point.seed)
    red = 255 * x / max(point.width - 1, 1)
    green = 255 * y / max(point.height - 1, 1)
    blue = 127 + 64 * np.sin(x / 17.0) * np.cos(y / 23.0) + rng.normal(0, 8, size=x.shape)
    pixels = np.stack([red, green, blue], axis=-1).clip(0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def pipeline_call(
    pipe: Any,
    image: Any,
    point: PointConfig,
    *,
    steps: int,
    generator: Any,
    output_type: str = "pil",
    callback: Callable[..., dict[str, Any]] | None = None,
) -> Any:
    """One call of the pipeline with the point's settings: the one place that spells them out, for
    this bench, the multi-GPU ranks and the quality gate's reference alike."""
    return pipe(
        image,
        height=point.height,
        width=point.width,
        num_frames=point.frames,
        num_inference_steps=steps,
        min_guidance_scale=point.min_guidance_scale,
        max_guidance_scale=point.max_guidance_scale,
        fps=point.fps,
        motion_bucket_id=point.motion_bucket_id,
        noise_aug_strength=point.noise_aug_strength,
        decode_chunk_size=point.decode_chunk,
        num_videos_per_prompt=point.videos_per_call,
        generator=generator,
        output_type=output_type,
        callback_on_step_end=callback,
    )


# --- the run -----------------------------------------------------------------------------------


class _Bench:
    """State of one run, so the loop reads as the steps it takes."""

    def __init__(self, torch: Any, emit: Progress, sampler: TelemetrySampler) -> None:
        self.torch = torch
        self.emit = emit
        self.sampler = sampler
        self.where = (0, 0)  # (point, iteration) for the stage marks
        self.optimization: Any = None  # svdops.bench.optimize.Optimization with --optimize
        self.gate_failure: str | None = None

    def sync(self, device: str) -> Callable[[], None]:
        if device.startswith("cuda"):
            torch = self.torch
            return lambda: torch.cuda.synchronize(device)
        return lambda: None

    def mark(self, label: str) -> None:
        self.sampler.mark(label, point=self.where[0], iteration=self.where[1])

    def measure(
        self,
        pipe: Any,
        result: PointResult,
        clock: StageClock,
        before_point: Callable[[Any, PointConfig], None] | None,
    ) -> None:
        """Run one configuration; an OOM or an error becomes its status, and the loop goes on.
        KeyboardInterrupt passes through (status stays "running" for the caller to mark)."""
        result.status = "running"
        try:
            if before_point is not None:
                before_point(pipe, result.point)
            self.run_point(pipe, result, clock)
            result.status = "ok"
            return
        except BadInputError as exc:
            result.status, result.error = "failed", str(exc) + (f" ({exc.hint})" if exc.hint else "")
        except QualityGateFailed as exc:
            result.status, result.error = "failed", str(exc)
        except Exception as exc:
            if is_oom(exc, self.torch):
                result.status, result.error = "oom", _first_line(exc)
            else:
                result.status = "failed"
                result.error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                result.summary["traceback"] = traceback.format_exc()
        # Only here, after the except block has dropped the traceback (whose frames hold the
        # tensors), can the allocator give the memory back.
        self.release_memory(result.point.device)

    def run_point(self, pipe: Any, result: PointResult, clock: StageClock) -> None:
        point = result.point
        check_shape(pipe, point)
        vae_scale = int(pipe.vae_scale_factor)
        result.flops_per_step = unet_flops(
            dict(pipe.unet.config),
            batch=point.unet_batch,
            frames=point.frames,
            latent_height=point.height // vae_scale,
            latent_width=point.width // vae_scale,
        )
        image = conditioning_image(point)
        total = point.warmup + point.iterations
        for i in range(total):
            warmup = i < point.warmup
            steps = min(point.steps, point.warmup_steps) if warmup else point.steps
            self.where = (result.index, i)
            info = {"point": result.index, "iteration": i, "total": total, "warmup": warmup, "steps": steps}
            self.emit("iteration", info)
            result.records.append(self._iteration(pipe, point, clock, image, i, warmup, steps))
            if self.gate_failure:
                raise QualityGateFailed(self.gate_failure)
            self.emit("iteration_done", {"point": result.index, "iteration": i, "e2e_s": result.records[-1].e2e_s})

    def _iteration(
        self, pipe: Any, point: PointConfig, clock: StageClock, image: Any, i: int, warmup: bool, steps: int
    ) -> IterationRecord:
        torch = self.torch
        cuda = point.device.startswith("cuda")
        if cuda:
            torch.cuda.reset_peak_memory_stats(point.device)
        generator = torch.Generator(device=point.device).manual_seed(point.seed)
        times = clock.begin()
        mark = self.sampler.mark("iteration:start", point=self.where[0], iteration=i)
        # PIL frames: diffusers' default output (the anchors ran with the defaults), so end-to-end
        # is what a user of the pipeline waits for.
        out = clock.run(
            lambda: pipeline_call(pipe, image, point, steps=steps, generator=generator, callback=clock.callback)
        )
        end = self.sampler.mark("iteration:end", point=self.where[0], iteration=i)
        inspect_frames(out.frames, times)
        gate = self.optimization
        if gate is not None and gate.gate_pending and not warmup and self.where[0] == 0:
            # The reference was made at point 0 with the full steps and the same seed: this output
            # must match it. Checked outside the clock, so the comparison is never timed.
            verdict = gate.check(out.frames)
            if not verdict.passed:
                self.gate_failure = verdict.describe()  # raised once this iteration's record is kept
        del out
        gib = 2**30
        return IterationRecord(
            iteration=i,
            warmup=warmup,
            steps=steps,
            t_start_unix=mark.t_unix,
            t_start_mono=mark.t_mono,
            t_end_mono=end.t_mono,
            stages_s=dict(times.stages_s),
            steps_s=list(times.steps_s),
            step_end_unix=list(times.step_end_unix),
            e2e_s=times.e2e_s or 0.0,
            peak_allocated_gib=torch.cuda.max_memory_allocated(point.device) / gib if cuda else None,
            peak_reserved_gib=torch.cuda.max_memory_reserved(point.device) / gib if cuda else None,
            nan_frac=times.nan_frac,
            black_frames=times.black_frames,
            frames_out=times.frames_out,
        )

    def release_memory(self, device: str) -> None:
        gc.collect()
        if device.startswith("cuda"):
            self.torch.cuda.empty_cache()


def run_bench(
    request: BenchRequest,
    *,
    progress: Progress | None = None,
    nvml: Any = None,
    gather: Callable[[], tuple[Any, str | None]] | None = None,
    before_point: Callable[[Any, PointConfig], None] | None = None,
) -> BenchOutcome:
    """Run the benchmark the request describes and commit one run folder to `request.store`.

    `nvml` replaces the pynvml module (tests pass a fake); `gather` replaces host-facts gathering;
    `before_point(pipe, point)` runs before each configuration (tests use it to inject faults
    through the pipeline's real code paths). Raises BadInputError for a request that cannot run.
    """
    torch, _, _ = import_stack()
    emit: Progress = progress or (lambda event, info: None)
    device = resolve_device(request, torch)
    points = resolve_points(request, device)
    for point in points:
        _check_dtype(point)

    emit("phase", {"text": "gathering host facts"})
    facts, facts_note = gather() if gather else gather_local_facts(use_nvml=device.startswith("cuda"))
    notes = [facts_note] if facts_note else []
    host = getattr(facts, "hostname", None) or socket.gethostname()
    started = datetime.now(UTC)

    sampler = TelemetrySampler(_nvml_device(device, torch), hz=request.telemetry_hz, nvml=nvml)
    use_telemetry = request.telemetry and (device.startswith("cuda") or nvml is not None)
    if not request.telemetry:
        notes.append("telemetry off (--no-telemetry)")
    elif not use_telemetry:
        notes.append("no telemetry: the run is on the CPU (NVML reports NVIDIA GPUs only)")

    results = [PointResult(index=k, point=p) for k, p in enumerate(points)]
    emit("plan", {"points": len(points), "iterations": sum(p.warmup + p.iterations for p in points)})
    bench = _Bench(torch, emit, sampler)
    run = _RunState(started=started, notes=notes)
    with RunWriter(request.store, run_name(host, request.scenario, started)) as writer, _sigterm_as_interrupt():
        if use_telemetry:
            sampler.start()
            if not sampler.available:
                notes.append(f"no telemetry: {sampler.note}")
        try:
            _build_and_run(bench, request, results, run, before_point)
        except KeyboardInterrupt:
            run.interrupted = True
            for r in results:
                if r.status == "running":
                    r.status = "interrupted"
        finally:
            sampler.stop()

        samples = sampler.samples
        gpu_name = torch.cuda.get_device_name(device) if device.startswith("cuda") else None
        for r in results:
            for rec in r.records:
                rec.energy_j = energy_joules(samples_between(samples, rec.t_start_mono, rec.t_end_mono))
            compiled = r.point.compile or bool(run.optimization and run.optimization.compiled)
            r.summary = _summarize_point(r, samples, gpu_name, compiled)
        results_doc = _results_document(request, device, gpu_name, results, run, sampler, use_telemetry)
        writer.write_json("facts.json", facts.to_dict() if facts is not None else None)
        config_doc = _config_document(request, points, results_doc["weights"])
        config_doc["optimize"] = results_doc["optimize"]
        writer.write_json("config.json", config_doc)
        writer.write_json("results.json", results_doc)
        writer.write_json("versions.json", collect_versions(torch, sampler, facts, device))
        writer.write_csv("iterations.csv", ITERATION_COLUMNS, _iteration_rows(results))
        writer.write_csv("steps.csv", STEP_COLUMNS, _step_rows(results))
        writer.write_csv("telemetry.csv", TELEMETRY_COLUMNS, (s.as_row() for s in samples))
        writer.write_csv("marks.csv", MARK_COLUMNS, (m.as_row() for m in sampler.marks))
        path = writer.commit()
    return BenchOutcome(path=path, status=results_doc["status"], results=results_doc, points=results)


@dataclass
class _RunState:
    started: datetime
    notes: list[str]
    weights: Weights | None = None
    build_s: float | None = None
    interrupted: bool = False
    optimization: Any = None  # svdops.bench.optimize.Optimization
    compile_cache: Any = None  # svdops.bench.optimize.compile_cache.CompileCache for a plain --compile


def _build_and_run(
    bench: _Bench,
    request: BenchRequest,
    results: list[PointResult],
    run: _RunState,
    before_point: Callable[[Any, PointConfig], None] | None,
) -> None:
    """One pipeline for every point: the sweep axes change only call arguments, never the model."""
    first = results[0].point
    bench.emit("phase", {"text": "building the pipeline"})
    t0 = time.perf_counter()
    try:
        pipe, run.weights = prepare_pipeline(first, request.weights)
    except Exception as exc:
        if not is_oom(exc, bench.torch):
            raise
        for r in results:
            r.status, r.error = "oom", f"out of memory while loading the pipeline: {_first_line(exc)}"
    finally:
        run.build_s = time.perf_counter() - t0
    if any(r.status == "oom" for r in results):
        bench.release_memory(first.device)
        return
    if first.optimize != "none":
        from svdops.bench.optimize import optimize_pipeline

        bench.emit("phase", {"text": f"applying --optimize {first.optimize}"})
        t0 = time.perf_counter()

        def reference() -> Any:
            generator = bench.torch.Generator(device=first.device).manual_seed(first.seed)
            image = conditioning_image(first)
            return pipeline_call(pipe, image, first, steps=first.steps, generator=generator).frames

        run.optimization = optimize_pipeline(pipe, first, cache_dir=request.compile_cache, reference=reference)
        run.optimization.setup_s = time.perf_counter() - t0
        bench.optimization = run.optimization
    elif first.compile and request.compile_cache:
        from svdops.bench.optimize import compile_cache

        run.compile_cache = compile_cache.configure(request.compile_cache)
    clock = StageClock(
        pipe,
        bench.sync(first.device),
        mark=bench.mark,
        on_step=lambda i: bench.emit("step", {"step": i}),
    )
    for result in results:
        bench.emit("point", {"point": result.index, "total": len(results), "config": result.point.sweep})
        bench.measure(pipe, result, clock, before_point)
        bench.emit("point_done", {"point": result.index, "status": result.status})


def _results_document(
    request: BenchRequest,
    device: str,
    gpu_name: str | None,
    results: list[PointResult],
    run: _RunState,
    sampler: TelemetrySampler,
    use_telemetry: bool,
) -> dict[str, Any]:
    fits = largest_fitting([(r.point, r.status) for r in results]) if request.sweep else None
    largest = next(({"point": r.index, "config": r.point.to_dict()} for r in results if r.point is fits), None)
    return {
        "schema": RESULTS_SCHEMA,
        "status": _overall_status(results, run.interrupted),
        "scenario": request.scenario,
        "device": device,
        "gpu": gpu_name,
        "weights": run.weights.to_dict() if run.weights else None,
        "started_at": run.started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "build_s": run.build_s,
        "optimize": _optimize_document(request, results, run),
        "points": [_point_doc(r) for r in results],
        "largest_fitting": largest,
        "telemetry": {
            "enabled": use_telemetry,
            "available": sampler.available,
            "gpu": sampler.gpu_name,
            "note": sampler.note,
            "hz": request.telemetry_hz,
            "sampler_cpu_s": round(sampler.thread_cpu_s, 4),  # what sampling cost this process
            "summary": summarize(sampler.samples),
        },
        "notes": run.notes,
    }


def _config_document(request: BenchRequest, points: list[PointConfig], weights: Any) -> dict[str, Any]:
    return {
        "request": dataclasses.asdict(request),
        "scenario": dataclasses.asdict(load_scenario(request.scenario)),
        "sweep_axes": parse_sweep(request.sweep),
        "weights": weights,
        "points": [p.to_dict() for p in points],
    }


def _optimize_document(request: BenchRequest, results: list[PointResult], run: _RunState) -> dict[str, Any]:
    """What --optimize applied and declined, the compile cache, and the quality gate's verdict."""
    compile_s = next((r.summary.get("compile_s") for r in results if r.summary.get("compile_s") is not None), None)
    if run.optimization is not None:
        doc = run.optimization.to_dict(compile_s)
        doc["setup_s"] = run.optimization.setup_s
        return doc
    return {
        "level": "none",
        "compile_mode": request.compile_mode,
        "levers": [],
        "applied": ["compile-unet"] if request.compile else [],
        "compile_cache": run.compile_cache.report(compile_s) if run.compile_cache else None,
        "quality_gate": {"checked": False, "why": "the reference pipeline is what the gate compares against"},
    }


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _nvml_device(device: str, torch: Any) -> int | str:
    """The NVML identity of a CUDA device: its UUID, since CUDA_VISIBLE_DEVICES renumbers indices."""
    if not device.startswith("cuda"):
        return 0
    index = int(device.partition(":")[2] or 0)
    uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
    if uuid is None:
        return index
    text = str(uuid)
    return text if text.startswith("GPU-") else f"GPU-{text}"


def _overall_status(results: list[PointResult], interrupted: bool) -> str:
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


def _summarize_point(
    result: PointResult, samples: list[Any], gpu_name: str | None, compiled: bool = False
) -> dict[str, Any]:
    summary: dict[str, Any] = {k: v for k, v in result.summary.items() if k == "traceback"}
    timed = result.timed
    point = result.point
    summary["iterations"] = len(timed)
    summary["warmup_iterations"] = len(result.records) - len(timed)
    summary["unet_tflop_per_step"] = None if result.flops_per_step is None else result.flops_per_step / 1e12
    if not timed:
        return summary
    for stage in ("clip", "vae_encode", "unet", "decode"):
        summary[f"{stage}_s"] = describe([r.stages_s.get(stage) for r in timed])
    summary["e2e_s"] = describe([r.e2e_s for r in timed])
    all_steps = [s for r in timed for s in r.steps_s]
    summary["unet_step_s"] = describe(all_steps)
    summary["first_step_s"] = describe([r.steps_s[0] for r in timed if r.steps_s])
    e2e = summary["e2e_s"]["median"]
    videos = point.videos_per_call
    summary["videos_per_hour"] = 3600.0 * videos / e2e if e2e else None
    summary["frames_per_s"] = point.frames * videos / e2e if e2e else None
    step = summary["unet_step_s"]["median"]
    tflops = result.flops_per_step / step / 1e12 if result.flops_per_step and step else None
    summary["unet_tflops"] = tflops
    peak, source = dense_peak_tflops(gpu_name, point.dtype)
    summary["peak_tflops"] = peak
    summary["peak_tflops_source"] = source
    summary["mfu"] = tflops / peak if tflops and peak else None
    allocated = [r.peak_allocated_gib for r in timed if r.peak_allocated_gib is not None]
    reserved = [r.peak_reserved_gib for r in timed if r.peak_reserved_gib is not None]
    summary["peak_allocated_gib"] = max(allocated) if allocated else None
    summary["peak_reserved_gib"] = max(reserved) if reserved else None
    nan = [r.nan_frac for r in timed if r.nan_frac is not None]
    summary["nan_frac_max"] = max(nan) if nan else None
    summary["black_frames"] = sum(r.black_frames or 0 for r in timed)
    summary["output_ok"] = bool(nan) and max(nan) == 0.0 and summary["black_frames"] == 0
    energies = [r.energy_j for r in timed if r.energy_j is not None]
    summary["energy_j_per_video"] = statistics.median(energies) / videos if energies else None
    if compiled and result.records and result.records[0].warmup and result.records[0].steps_s and step:
        # The first UNet call compiles; what it took beyond a normal step is the compile time.
        summary["compile_s"] = result.records[0].steps_s[0] - step
    window = samples_between(samples, timed[0].t_start_mono, timed[-1].t_end_mono)
    telemetry = summarize(window)
    summary["telemetry"] = telemetry
    summary["nvml_mem_used_mib_max"] = telemetry.get("mem_used_mib_max")
    summary["throttled"] = telemetry.get("throttled") if window else None
    return summary


def _point_doc(result: PointResult) -> dict[str, Any]:
    return {
        "point": result.index,
        "config": result.point.to_dict(),
        "status": result.status,
        "error": result.error,
        "iterations_done": len(result.timed),
        "summary": result.summary,
    }


def _iteration_rows(results: list[PointResult]) -> Iterator[list[Any]]:
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


def _step_rows(results: list[PointResult]) -> Iterator[list[Any]]:
    for r in results:
        for rec in r.records:
            for step, (seconds, t_end) in enumerate(zip(rec.steps_s, rec.step_end_unix, strict=True)):
                yield [r.index, rec.iteration, rec.warmup, step, seconds, t_end]
