"""`svdops bench`: run the reference pipeline point by point, keep every finished iteration, store the run.

Faults are results: an out-of-memory at one configuration is recorded as "oom" and a sweep goes
on; Ctrl-C (or SIGTERM) ends the run as "interrupted" with every finished iteration kept. The run
folder is committed in both cases; only an exception that is a bug leaves nothing behind.
"""

from __future__ import annotations

import gc
import socket
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from svdops.bench.config import BenchRequest, PointConfig, resolve_points
from svdops.bench.environment import (
    check_dtype,
    collect_versions,
    first_line,
    gather_local_facts,
    is_oom,
    module_dtypes,
    nvml_device_id,
    resolve_device,
    restore_dtypes,
    sigterm_as_interrupt,
)
from svdops.bench.flops import unet_flops
from svdops.bench.invoke import conditioning_image, pipeline_call
from svdops.bench.models import check_shape, import_stack, prepare_pipeline
from svdops.bench.optimize.quality import QualityGateFailed
from svdops.bench.records import (
    ITERATION_COLUMNS,
    STEP_COLUMNS,
    BenchOutcome,
    IterationRecord,
    PointResult,
    RunState,
    config_document,
    iteration_rows,
    results_document,
    step_rows,
    summarize_point,
)
from svdops.bench.timing import StageClock, inspect_frames
from svdops.errors import BadInputError
from svdops.runs.store import RunWriter, run_name, unfinished_notes
from svdops.telemetry import MARK_COLUMNS, TELEMETRY_COLUMNS, TelemetrySampler, energy_joules

Progress = Callable[[str, dict[str, Any]], None]


class _Bench:
    """State of one run, so the loop reads as the steps it takes."""

    def __init__(self, torch: Any, emit: Progress, sampler: TelemetrySampler) -> None:
        self.torch = torch
        self.emit = emit
        self.sampler = sampler
        self.where = (0, 0)  # (point, iteration) for the stage marks
        self.optimization: Any = None  # svdops.bench.optimize.Optimization with --optimize
        self.dynamo: Any = None  # svdops.bench.optimize.dynamo.DynamoWatch when anything is compiled
        self.gate_failure: str | None = None
        self.notes: list[str] = []  # the run's notes (RunState.notes)

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
        dtypes = module_dtypes(pipe)
        if self.dynamo is not None:
            self.dynamo.start_point()
        try:
            if before_point is not None:
                before_point(pipe, result.point)
            self.run_point(pipe, result, clock)
            result.status = "ok"
            self.compile_report(result)
            return
        except BadInputError as exc:
            result.status, result.error = "failed", str(exc) + (f" ({exc.hint})" if exc.hint else "")
        except QualityGateFailed as exc:
            result.status, result.error = "failed", str(exc)
        except Exception as exc:
            if is_oom(exc, self.torch):
                result.status, result.error = "oom", first_line(exc)
            else:
                result.status = "failed"
                result.error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                result.summary.traceback = traceback.format_exc()
        # A call that failed halfway keeps what it cast (the VAE's fp32 upcast): the next point must
        # run with the dtypes this one started with.
        self.compile_report(result)
        restored = restore_dtypes(pipe, dtypes)
        if restored:
            result.error = f"{result.error}; dtypes put back: {', '.join(restored)}"
        # Only here, after the except block has dropped the traceback (whose frames hold the
        # tensors), can the allocator give the memory back.
        self.release_memory(result.point.device)

    def compile_report(self, result: PointResult) -> None:
        if self.dynamo is None:
            return
        result.dynamo = self.dynamo.report(len(result.timed))
        if result.dynamo["compiled"] is False and result.timed:
            self.notes.append(f"point {result.index} ran eagerly, not compiled: {result.dynamo['why']}")

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
            if self.dynamo is not None:
                self.dynamo.timed = not warmup
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
        check_dtype(point)

    emit("phase", {"text": "gathering host facts"})
    facts, facts_note = gather() if gather else gather_local_facts(use_nvml=device.startswith("cuda"))
    notes = [facts_note] if facts_note else []
    host = getattr(facts, "hostname", None) or socket.gethostname()
    started = datetime.now(UTC)

    sampler = TelemetrySampler(nvml_device_id(device, torch), hz=request.telemetry_hz, nvml=nvml)
    use_telemetry = request.telemetry and (device.startswith("cuda") or nvml is not None)
    if not request.telemetry:
        notes.append("telemetry off (--no-telemetry)")
    elif not use_telemetry:
        notes.append("no telemetry: the run is on the CPU (NVML reports NVIDIA GPUs only)")

    results = [PointResult(index=k, point=p) for k, p in enumerate(points)]
    emit("plan", {"points": len(points), "iterations": sum(p.warmup + p.iterations for p in points)})
    bench = _Bench(torch, emit, sampler)
    run = RunState(started=started, notes=notes)
    bench.notes = run.notes
    with RunWriter(request.store, run_name(host, request.scenario, started)) as writer, sigterm_as_interrupt():
        notes.extend(unfinished_notes(writer))
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
            if bench.dynamo is not None:
                bench.dynamo.close()

        samples = sampler.samples
        gpu_name = torch.cuda.get_device_name(device) if device.startswith("cuda") else None
        for r in results:
            for rec in r.records:
                rec.energy_j = energy_joules(samples, rec.t_start_mono, rec.t_end_mono)  # edges interpolated
            compiled = r.point.compile or bool(run.optimization and run.optimization.compiled)
            r.summary = summarize_point(r, samples, gpu_name, compiled)
        results_doc = results_document(request, device, gpu_name, results, run, sampler, use_telemetry)
        writer.write_json("facts.json", facts.to_dict() if facts is not None else None)
        config_doc = config_document(request, points, results_doc.weights)
        config_doc.optimize = results_doc.optimize
        writer.write_json("config.json", config_doc.to_json())
        writer.write_json("results.json", results_doc.to_json())
        writer.write_json("versions.json", collect_versions(torch, sampler, facts, device).to_json())
        writer.write_csv("iterations.csv", ITERATION_COLUMNS, iteration_rows(results))
        writer.write_csv("steps.csv", STEP_COLUMNS, step_rows(results))
        writer.write_csv("telemetry.csv", TELEMETRY_COLUMNS, (s.as_row() for s in samples))
        writer.write_csv("marks.csv", MARK_COLUMNS, (m.as_row() for m in sampler.marks))
        path = writer.commit()
    return BenchOutcome(path=path, status=results_doc.status or "failed", results=results_doc, points=results)


def _build_and_run(
    bench: _Bench,
    request: BenchRequest,
    results: list[PointResult],
    run: RunState,
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
            r.status, r.error = "oom", f"out of memory while loading the pipeline: {first_line(exc)}"
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
    if first.compile or (run.optimization is not None and run.optimization.compiled):
        from svdops.bench.optimize.dynamo import DynamoWatch

        bench.dynamo = DynamoWatch().install()
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
