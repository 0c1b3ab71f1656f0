"""`svdops bench`: parse options, run the benchmark, render the summary, exit with the right code."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from svdops.bench.config import (
    COMPILE_MODES,
    DEFAULT_SCENARIO,
    DTYPES,
    OPTIMIZE_LEVELS,
    SWEEP_KEYS,
    BenchRequest,
    check_request_shape,
)
from svdops.bench.multi import WORKLOADS, MultiRequest
from svdops.bench.multi.launcher import parse_gpus, wants_multi
from svdops.cli.errors import handles_errors
from svdops.errors import BadInputError, InterruptedRunError, RunFailedError
from svdops.runs.store import DEFAULT_STORE
from svdops.scenarios import scenario_names
from svdops.text import markup_safe

if TYPE_CHECKING:  # the bench's modules are imported when a run starts, not for --help
    from svdops.bench.multi.merge import MultiOutcome
    from svdops.bench.records import BenchOutcome
    from svdops.runs.documents import OptimizeRecord


@click.command("bench")
@click.option("--scenario", type=click.Choice(scenario_names()), default=DEFAULT_SCENARIO, show_default=True,
              help="What to run (svdops/data/scenarios.yaml); `tiny` runs in seconds on a CPU.")
@click.option("--dtype", type=click.Choice(DTYPES), help="Default: fp16 on a GPU, fp32 on the CPU.")
@click.option("--decode-chunk", type=click.IntRange(min=1), help="Frames the VAE decodes at a time.")
@click.option("--steps", type=click.IntRange(min=1), help="Denoising steps.")
@click.option("--frames", type=click.IntRange(min=1), help="Frames per video.")
@click.option("--height", type=click.IntRange(min=8), help="Output height in pixels.")
@click.option("--width", type=click.IntRange(min=8), help="Output width in pixels.")
@click.option("--videos-per-call", type=click.IntRange(min=1), help="Videos per pipeline call (batch).")
@click.option("--compile", "compile_unet", is_flag=True, help="torch.compile the UNet (compile time reported apart).")
@click.option("--optimize", type=click.Choice(OPTIMIZE_LEVELS), default="none", show_default=True,
              help="none: the reference pipeline. safe: levers that keep the output within fp16 tolerance. "
              "max: adds lower-precision paths (fp8) behind a PSNR/SSIM quality gate.")
@click.option("--compile-mode", type=click.Choice(COMPILE_MODES), default="default", show_default=True,
              help="torch.compile mode for --compile and --optimize (reduce-overhead: CUDA graphs).")
@click.option("--compile-cache", type=click.Path(file_okay=False), metavar="DIR",
              help="Keep Inductor's compile cache here (--optimize default: ~/.cache/svdops/inductor).")
@click.option("--iterations", type=click.IntRange(min=1), help="Timed iterations.")
@click.option("--warmup", type=click.IntRange(min=0), help="Untimed warm-up iterations first.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", help="cuda, cuda:N or cpu. Default: the first GPU, else the CPU for `tiny`.")
@click.option("--store", type=click.Path(file_okay=False), default=DEFAULT_STORE, show_default=True,
              help="Run store: one folder per run is written here.")
@click.option("--weights", type=click.Path(), help="A local diffusers snapshot of SVD or SVD-XT (never downloaded).")
@click.option("--sweep", multiple=True, metavar="KEY=V1,V2",
              help=f"Repeatable; runs the cross product. KEY: {', '.join(SWEEP_KEYS)}.")
@click.option("--no-telemetry", is_flag=True, help="Do not sample the GPU through NVML.")
@click.option("--telemetry-hz", type=click.FloatRange(min=0.1, max=1000), default=10.0, show_default=True)
@click.option("--gpus", "gpus_text", metavar="all|0,1,..", help="GPUs to run on, one rank each (through torchrun).")
@click.option("--workload", type=click.Choice(WORKLOADS),
              help="Multi-GPU workload: data- or CFG-parallel inference, a DDP training step, all-reduce sweep.")
@click.option("--nproc-per-node", type=click.IntRange(min=1), help="Ranks per host (on the CPU: gloo processes).")
@click.option("--nnodes", type=click.IntRange(min=1), default=1, show_default=True, help="Hosts in the run.")
@click.option("--node-rank", type=click.IntRange(min=0), help="This host's place (fixed order); default: c10d assigns.")
@click.option("--rdzv-endpoint", metavar="HOST:PORT", help="Rendezvous for several hosts (c10d), e.g. node0:29500.")
@click.option("--slurm-script", type=click.Path(dir_okay=False), help="Write an sbatch script; run nothing.")
@click.option("--rank-timeout", type=click.FloatRange(min=1), default=600.0, show_default=True,
              help="Seconds without progress from any rank before the run is stopped.")
@click.option("--nccl-max-mb", type=click.FloatRange(min=1), help="Largest all-reduce of --workload nccl "
              "(default 4096 on GPUs, 16 on the CPU).")
@click.option("--grad-checkpointing/--no-grad-checkpointing", default=True, show_default=True,
              help="Gradient checkpointing in --workload train-ddp (without it SVD-XT fits no card).")
@click.option("--report", "report_file", type=click.Path(dir_okay=False, writable=True), metavar="FILE",
              help="Also write an HTML report of this run to FILE (as `svdops report RUN -o FILE`).")
@handles_errors
def bench(
    scenario: str,
    dtype: str | None,
    decode_chunk: int | None,
    steps: int | None,
    frames: int | None,
    height: int | None,
    width: int | None,
    videos_per_call: int | None,
    compile_unet: bool,
    optimize: str,
    compile_mode: str,
    compile_cache: str | None,
    iterations: int | None,
    warmup: int | None,
    seed: int,
    device: str | None,
    store: str,
    weights: str | None,
    sweep: tuple[str, ...],
    no_telemetry: bool,
    telemetry_hz: float,
    gpus_text: str | None,
    workload: str | None,
    nproc_per_node: int | None,
    nnodes: int,
    node_rank: int | None,
    rdzv_endpoint: str | None,
    slurm_script: str | None,
    rank_timeout: float,
    nccl_max_mb: float | None,
    grad_checkpointing: bool,
    report_file: str | None,
) -> None:
    """Benchmark the reference Stable Video Diffusion pipeline on this machine, stage by stage."""
    from svdops.bench import run_bench

    request = BenchRequest(
        scenario=scenario, device=device, dtype=dtype, decode_chunk=decode_chunk, steps=steps, frames=frames,
        height=height, width=width, videos_per_call=videos_per_call, compile=compile_unet, iterations=iterations,
        warmup=warmup, seed=seed, store=store, weights=weights, sweep=sweep, telemetry=not no_telemetry,
        telemetry_hz=telemetry_hz, optimize=optimize, compile_mode=compile_mode, compile_cache=compile_cache,
    )  # fmt: skip
    check_request_shape(request)  # before any pipeline is built or any rank started
    gpus = parse_gpus(gpus_text)
    multi_path = wants_multi(workload, gpus, gpus_text, nproc_per_node) or nnodes > 1 or bool(slurm_script)
    if multi_path and optimize != "none":
        raise BadInputError("--optimize runs on the single-GPU bench only", where="--optimize",
                            hint="drop --workload/--nproc-per-node/--nnodes, or drop --optimize")  # fmt: skip
    if not multi_path and gpus is not None and device is None:
        request = dataclasses.replace(request, device=f"cuda:{gpus[0]}")  # --gpus N: the single-GPU bench on N
    if multi_path:
        multi = MultiRequest(
            bench=request, workload=workload or "infer-dp", gpus=gpus, nproc_per_node=nproc_per_node, nnodes=nnodes,
            node_rank=node_rank, rdzv_endpoint=rdzv_endpoint, rank_timeout_s=rank_timeout,
            nccl_max_bytes=int(nccl_max_mb * 2**20) if nccl_max_mb else None, grad_checkpointing=grad_checkpointing,
        )  # fmt: skip
        bench_multi(multi, slurm_script)
        return
    with progress_bar() as progress:
        outcome = run_bench(request, progress=progress)
    render(outcome)
    if report_file:
        # Written before the status checks below: an OOM or interrupted run is worth a report too.
        from svdops.report import write_report

        click.echo(f"report: {write_report([str(outcome.path)], report_file).output}")
    if outcome.status == "interrupted":
        done = sum(p.iterations_done or 0 for p in outcome.results.points)
        raise InterruptedRunError(
            f"interrupted: {done} finished iteration(s) kept in {outcome.path}",
            hint=f"the finished iterations are in {outcome.path / 'iterations.csv'}; run again for a complete run",
        )
    if not outcome.any_ok:
        errors = {p.error for p in outcome.results.points if p.error}
        hint = (
            "try --scenario low-vram, a smaller --decode-chunk or fewer --frames"
            if outcome.status == "oom"
            else "the run folder's results.json has the details"
        )
        raise RunFailedError(f"no configuration ran ({outcome.status}): {'; '.join(sorted(errors))}", hint=hint)


def bench_multi(request: MultiRequest, slurm_script: str | None) -> None:
    """The multi-process path: torchrun on this host, or an sbatch script for Slurm."""
    from svdops.bench.multi.launcher import run_multi, write_slurm_script

    if slurm_script:
        path = write_slurm_script(request, slurm_script)
        click.echo(f"wrote {path}: submit it with `sbatch {path}`")
        return
    with rank_lines() as progress:
        outcome = run_multi(request, progress=progress)
    render_multi(outcome)
    if outcome.status == "interrupted":
        raise InterruptedRunError(f"interrupted: finished work kept in {outcome.path}",
                                  hint=f"{outcome.path / 'iterations.csv'} has every finished iteration")  # fmt: skip
    if outcome.failure:
        failure = outcome.failure
        who = f"rank {failure.rank}" if failure.rank is not None else "the run"
        raise RunFailedError(
            f"{who} failed: {failure.error}",
            hint=f"finished results are kept in {outcome.path}; torchrun's output is in "
            f"{outcome.path / 'torchrun.log'}",
        )


@contextmanager
def rank_lines() -> Iterator[Any]:
    """What each rank is doing, one dim line per change, on stderr (nothing when it is not a TTY)."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console

    console = Console(stderr=True)

    def on_event(event: str, info: dict[str, Any]) -> None:
        console.print(f"[dim]{markup_safe(info['text'])}[/dim]", highlight=False)  # a rank's text, maybe remote

    yield on_event


def render_multi(outcome: MultiOutcome) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console() if sys.stdout.isatty() else Console(width=200)
    results = outcome.results
    where = markup_safe(results.gpu or results.device, one_line=True)
    title = f"svdops bench {results.scenario} {results.workload} x{results.world_size} on {where}"
    scaling = results.scaling
    if scaling:
        table = Table(title=title)
        for column in ("rank", "host", "gpu", "status", "detail"):
            table.add_column(column)
        for r in scaling.per_rank:
            detail = {k: v for k, v in r.items() if k in ("videos", "role", "videos_per_hour", "samples_per_s")}
            timing = r.get("e2e_s") or r.get("step_s") or {}
            detail["median_s"] = timing.get("median")
            text = ", ".join(f"{k} {_fmt(v)}" for k, v in detail.items())
            table.add_row(str(r["rank"]), markup_safe(r["host"], one_line=True),
                          markup_safe(_fmt(r["gpu"]), one_line=True), markup_safe(r["status"], one_line=True),
                          markup_safe(text))
        console.print(table)
        throughput = scaling.throughput
        value, unit = (throughput.value, throughput.unit) if throughput else (None, None)
        source = scaling.baseline.source if scaling.baseline else None
        console.print(f"throughput: {_fmt(value, 2)} {unit or ''}; one-GPU baseline "
                      f"({source}); speedup {_fmt(scaling.speedup, 2)}, "
                      f"scaling efficiency {_fmt(scaling.efficiency, 3)}")  # fmt: skip
        if scaling.check:
            check = scaling.check
            verdict = "matches" if check["matches"] else "DIFFERS"
            console.print(f"CFG split vs one GPU: max |diff| {check['max_abs_diff']:.3g}, {verdict} "
                          f"(tolerance {check['tolerance']:g} of the largest latent)")  # fmt: skip
    if results.nccl:
        table = Table(title=f"{title}: all-reduce")
        for column in ("size", "time ms", "algbw GB/s", "busbw GB/s", "expected busbw GB/s"):
            table.add_column(column)
        for row in results.nccl:
            size_mb = None if row.size_bytes is None else f"{row.size_bytes / 2**20:g} MB"
            time_ms = None if row.time_s is None else row.time_s * 1e3
            table.add_row(
                _fmt(size_mb), _fmt(time_ms, 3), _fmt(row.algbw_gbps, 2), _fmt(row.busbw_gbps, 2),
                _fmt(row.expected_busbw_gbps, 0),
            )  # fmt: skip
        console.print(table)
    topology = results.topology or {}
    console.print(f"link: {markup_safe(topology.get('link_type') or 'unknown')}; "
                  f"expected busbw {_fmt(topology.get('expected_busbw_gbps'), 0)} GB/s")  # fmt: skip
    for note in results.notes:
        console.print(f"note: {markup_safe(note)}")
    console.print(f"run: {markup_safe(outcome.path)} ({results.status})")


def render_optimize(console: Any, optimize: OptimizeRecord | None) -> None:
    """One line per lever the level considered: applied (with its note) or declined (with why)."""
    if optimize is None or (optimize.level or "none") == "none":
        return
    console.print(f"optimize {optimize.level} (compile mode {optimize.compile_mode}, "
                  f"arch {optimize.arch or 'cpu'}):")  # fmt: skip
    for lever in optimize.levers:
        detail = lever.get("note") or lever.get("reason") or ""
        console.print(f"  {lever['status']:8} {lever['name']}: {markup_safe(detail)}", highlight=False)
    cache = optimize.compile_cache
    if cache:
        hits, misses = cache["fxgraph_cache_hit"], cache["fxgraph_cache_miss"]
        console.print(f"compile cache: {cache['dir']} ({cache['state']} at start, {hits} graph hits, {misses} "
                      f"misses; compile {_fmt(cache['compile_s'], 1)} s)")  # fmt: skip
    gate = optimize.quality_gate or {}
    if gate.get("checked"):
        console.print(gate["text"], highlight=False)


@contextmanager
def progress_bar() -> Iterator[Any]:
    """A bar over iterations and one over UNet steps, on stderr; nothing when stderr is not a TTY."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=Console(stderr=True), transient=True,
    )  # fmt: skip
    tasks: dict[str, Any] = {}

    def on_event(event: str, info: dict[str, Any]) -> None:
        if event == "phase":
            bar.console.print(f"[dim]{info['text']}[/dim]")
        elif event == "plan":
            tasks["iterations"] = bar.add_task("iterations", total=info["iterations"])
            tasks["steps"] = bar.add_task("UNet steps", total=1)
        elif event == "iteration":
            label = "warm-up" if info["warmup"] else "timed"
            bar.update(tasks["iterations"], description=f"point {info['point'] + 1} {label}")
            bar.reset(tasks["steps"], total=info["steps"])
        elif event == "step":
            bar.advance(tasks["steps"])
        elif event == "iteration_done":
            bar.advance(tasks["iterations"])

    with bar:
        yield on_event


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def render(outcome: BenchOutcome) -> None:
    from rich.console import Console
    from rich.table import Table

    # A pipe or a file has no width: do not squeeze the table into 80 columns there.
    console = Console() if sys.stdout.isatty() else Console(width=200)
    results = outcome.results
    where = markup_safe(results.gpu or results.device, one_line=True)
    table = Table(title=f"svdops bench {results.scenario} on {where}")
    for column in ("point", "status", "config", "e2e s", "UNet s/step", "decode s", "videos/h", "TFLOP/s", "MFU",
                   "peak alloc GiB", "J/video", "throttled"):  # fmt: skip
        table.add_column(column)
    for p in results.points:
        s, c = p.summary, p.config
        config = f"{c['frames']}f {c['height']}x{c['width']} {c['steps']} steps chunk {c['decode_chunk']} {c['dtype']}"
        table.add_row(
            _fmt(p.point), _fmt(p.status), config, _fmt(s.median("e2e")), _fmt(s.median("unet_step")),
            _fmt(s.median("decode")), _fmt(s.videos_per_hour, 1), _fmt(s.unet_tflops, 1),
            _fmt(s.mfu, 3), _fmt(s.peak_allocated_gib, 2), _fmt(s.energy_j_per_video, 0),
            _fmt(s.throttled),
        )  # fmt: skip
    console.print(table)
    console.print(f"weights: {markup_safe(results.weights.description) if results.weights else '-'}")
    render_optimize(console, results.optimize)
    if results.largest_fitting:
        fit = results.largest_fitting.config
        console.print(f"largest configuration that fits: point {results.largest_fitting.point} "
                      f"({', '.join(f'{k}={v}' for k, v in fit['sweep'].items())})")  # fmt: skip
    for note in results.notes:
        console.print(f"note: {markup_safe(note)}")  # notes quote exceptions and host output
    console.print(f"run: {markup_safe(outcome.path)}")
