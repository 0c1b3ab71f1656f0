"""`svdops plan`: predicted SVD throughput, VRAM, energy and cost on cards you do not have."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.table import Table

from svdops.bench.config import DEFAULT_SCENARIO
from svdops.cli.errors import handles_errors
from svdops.cli.render import make_console
from svdops.errors import BadInputError
from svdops.scenarios import scenario_names
from svdops.text import markup_safe

PLAN_SCHEMA = "svdops.plan/1"
VALIDATE_SCHEMA = "svdops.plan.validate/1"


@click.command("plan")
@click.argument("runs", nargs=-1, type=click.Path(exists=True))
@click.option("--scenario", type=click.Choice(scenario_names()), default=DEFAULT_SCENARIO, show_default=True)
@click.option("--gpus", multiple=True, metavar="LIST",
              help="GPUs to plan, comma-separated table or nvidia-smi names (default: the whole table).")
@click.option("--count", type=click.IntRange(min=1), default=1, show_default=True, help="GPUs per box.")
@click.option("--price", "prices", multiple=True, metavar="GPU=USD_PER_GPU_HOUR",
              help="Override a card's price per GPU hour (repeatable).")
@click.option("--calibrate-from", "calibrate_from", multiple=True, type=click.Path(exists=True), metavar="RUNS",
              help="Run folders or stores (svdops bench --store) to calibrate on, beside the shipped anchors.")
@click.option("--no-anchors", is_flag=True, help="Calibrate on the given runs only, not the shipped H100 anchors.")
@click.option("--dtype", type=click.Choice(["fp16", "bf16"]), default="fp16", show_default=True)
@click.option("--compile", "compile_unet", is_flag=True, help="Plan a torch.compile'd UNet.")
@click.option("--decode-chunk", type=click.IntRange(min=1), help="Override the scenario's decode chunk.")
@click.option("--validate", "validate_runs", is_flag=True,
              help="Hold out each measured device in turn, predict it from the rest, print the error.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@handles_errors
def plan(runs: tuple[str, ...], scenario: str, gpus: tuple[str, ...], count: int, prices: tuple[str, ...],
         calibrate_from: tuple[str, ...], no_anchors: bool, dtype: str, compile_unet: bool,
         decode_chunk: int | None, validate_runs: bool, fmt: str) -> None:
    """Predict SVD videos/hour, cost per 1,000 videos, energy per video and fit on each GPU.

    \b
    svdops plan --scenario svd-xt-25f                      every card in the table, ranked
    svdops plan --gpus L40S,H200,B200 --count 8            8-GPU boxes of three cards
    svdops plan --price 'L40S=0.99' --format json          your own price, for scripts
    svdops plan --calibrate-from ./svdops-runs             calibrate on your measured runs too
    svdops plan --validate ./svdops-runs                   hold out each measured GPU, print the error

    Times come from FLOPs and bytes counted on the meta device at the scenario's shapes, turned into
    seconds with a per-op roofline at the clock each card holds under its power cap and an achieved
    efficiency per op class calibrated on measurements (the shipped H100 SXM anchors, the public rows
    of svdops/data/plan_validation.yaml, and RUNS). Every figure carries a band from the held-out
    errors and says what it was calibrated on. --validate exits 1 when a held-out prediction misses
    its target.
    """
    from svdops.plan.calibrate import gather_points, resolve_runs
    from svdops.plan.costmodel import workload_for_scenario
    from svdops.plan.predict import measured_scaling, planning_calibration, predict, rank, select_devices
    from svdops.plan.prices import parse_gpu_prices
    from svdops.plan.validate import public_validation_points, validate

    all_runs = resolve_runs([*runs, *calibrate_from])
    # The shipped anchors and public rows, with the runs given: what --validate holds out in turn,
    # and what the bands of every prediction come from.
    points, notes = gather_points(all_runs, anchors=not no_anchors)
    public, scored, meta, excluded = public_validation_points() if not no_anchors else ([], {}, {}, [])
    report = validate([*points, *public], scored, meta)
    if validate_runs:
        _render_validation(report, notes, fmt, excluded)
        if report.failed:
            sys.exit(1)
        return
    if no_anchors and not all_runs:
        raise BadInputError("--no-anchors leaves nothing to calibrate on", where="--no-anchors",
                            hint="pass --calibrate-from RUNS with GPU runs, or drop --no-anchors")
    workload = workload_for_scenario(scenario, dtype=dtype, compile=compile_unet, decode_chunk=decode_chunk)
    if workload.dtype == "fp32":
        raise BadInputError(f"scenario {scenario!r} runs on the CPU: there is nothing to plan on a GPU",
                            where="--scenario", hint="plan svd-xt-25f, svd-14f or low-vram")
    cal = planning_calibration(all_runs, anchors=not no_anchors)
    cal.bands = report.bands()
    devices = select_devices(gpus, parse_gpu_prices(prices))
    scaling = measured_scaling(all_runs, count) if count > 1 else None
    predictions = rank([predict(workload, d, cal, count=count, scaling=scaling) for d in devices
                        if workload.dtype in d.peak_tflops])
    skipped = [d.name for d in devices if workload.dtype not in d.peak_tflops]
    if fmt == "json":
        click.echo(json.dumps({
            "schema": PLAN_SCHEMA, "scenario": scenario, "workload": workload.__dict__, "count": count,
            "calibrated_on": cal.describe(), "calibration_notes": cal.notes,
            "bands": {k: {"band": b, "points": n} for k, (b, n) in cal.bands.items()},
            "skipped": [f"{name}: no {workload.dtype} tensor cores" for name in skipped],
            "predictions": [p.to_dict() for p in predictions],
        }, indent=2))
        return
    _render_plan(scenario, workload.label(), count, predictions, cal.describe(), cal.notes, skipped, workload.dtype,
                 cal.bands)


def _tier(basis: str) -> str:
    """The calibration tier in a word; --format json carries the whole sentence."""
    if basis.startswith("measured on"):
        return "measured"
    if basis.startswith("transferred"):
        return "other arch"
    return "same arch"


def _band(est: Any, digits: int = 2) -> str:
    return f"{est.value:.{digits}f} ±{est.band:.0%}"


def _render_plan(scenario: str, label: str, count: int, predictions: list[Any], calibrated_on: str,
                 notes: list[str], skipped: list[str], dtype: str, bands: dict[str, tuple[float, int]]) -> None:
    console = make_console()
    box = f"{count} x GPU box" if count > 1 else "one GPU"
    table = Table(title=f"svdops plan {scenario} ({label}), {box}", title_justify="left")
    for column, justify in (("#", "right"), ("GPU", "left"), ("fits", "left"), ("setting to fit", "left"),
                            ("UNet s/step", "right"), ("e2e s", "right"), ("videos/h", "right"),
                            ("$/1k videos", "right"), ("kJ/video", "right"), ("peak GiB", "right"),
                            ("basis", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for i, p in enumerate(predictions, 1):
        s = p.stages
        change = "-" if p.change is None else f"{p.change} (+{p.change_cost_s:.1f} s)"
        fits = {"yes": "[green]yes[/]", "tight": "[yellow]tight[/]", "no": "[red]no[/]"}[p.fits]
        usd = "-" if p.usd_per_1000_videos is None else _band(p.usd_per_1000_videos, 1)
        energy = "-" if p.energy_j_per_video is None else f"{p.energy_j_per_video.value / 1000:.1f}"
        table.add_row(str(i), markup_safe(p.device.name, one_line=True), fits, change, _band(s.unet_step_s, 3),
                      _band(s.e2e_s, 1), f"{p.videos_per_hour.value:.0f}", usd, energy,
                      f"{s.peak_allocated_gib.value:.1f}/{p.device.memory_gb:.0f}", _tier(s.unet_step_s.basis))
    console.print(table)
    console.print(f"calibrated on: {markup_safe(calibrated_on)}")  # run folders' GPU names and hosts
    console.print("basis: measured = this GPU was measured (band ±5%, run-to-run); same arch = another GPU of its "
                  "architecture; other arch = efficiency carried over from another architecture with the peak law. "
                  "Those bands are the largest error `svdops plan --validate` saw holding out a card of that relation "
                  "(judged only where no card was held out). Compute runs at the clock each card holds under its "
                  "power cap. fits: peak + CUDA context within the card; tight: only below the band's upper half. "
                  "Energy: power cap x the measured power fraction x e2e time.")
    for relation, (band, n) in sorted(bands.items()):
        console.print(f"band {relation}: ±{band:.0%} from {n} held-out points (svdops plan --validate)")
    if count > 1 and predictions:
        console.print(f"scaling: {predictions[0].scaling:.2f} ({predictions[0].scaling_basis})")
    for name in skipped:
        console.print(f"skipped {markup_safe(name)}: no {dtype} tensor cores (try --dtype fp16)")
    for p in predictions:
        for note in p.notes:
            if note.startswith("current PyTorch wheels"):
                console.print(f"{markup_safe(p.device.name)}: {markup_safe(note)}")
    for note in notes:
        console.print(f"note: {markup_safe(note)}")


def _render_validation(report: Any, notes: list[str], fmt: str, excluded: list[tuple[str, str]]) -> None:
    if fmt == "json":
        click.echo(json.dumps({
            "schema": VALIDATE_SCHEMA, "devices": report.devices, "possible": report.possible,
            "message": report.message, "notes": notes,
            "bands": {k: {"band": b, "points": n} for k, (b, n) in report.bands().items()},
            "not_scored": [{"point": p, "why": w} for p, w in report.not_scored],
            "excluded": [{"point": p, "why": w} for p, w in excluded],
            "rows": [{"held_out": r.held_out, "point": r.point, "relation": r.relation, "metric": r.metric,
                      "measured": r.measured, "predicted": r.predicted, "error": r.error, "target": r.target,
                      "passed": r.passed, "band": r.band, "band_points": r.band_points, "in_band": r.in_band,
                      "settings": r.settings, "assumed": list(r.assumed), "source": r.source,
                      "calibrated_on": r.calibrated_on} for r in report.rows],
        }, indent=2))
        return
    console = make_console()
    if not report.possible:
        console.print(markup_safe(report.message))
        return
    table = Table(title="svdops plan --validate: each device predicted from the others", title_justify="left")
    for column in ("held out", "point", "settings", "relation", "metric", "measured", "predicted", "error",
                   "target", "band (n)", "calibrated on"):
        table.add_column(column)
    labels = {"same-arch": "same architecture", "cross-arch": "other architecture",
              "cpu": "CPU: code path only (no target)"}
    for r in report.rows:
        verdict = "" if r.passed is None else (" [green]ok[/]" if r.passed else " [red]missed[/]")
        band = "-" if r.band is None else f"±{r.band:.0%} ({r.band_points}){'' if r.in_band else ' [red]outside[/]'}"
        settings = r.settings + (f" (assumed: {len(r.assumed)})" if r.assumed else "")
        table.add_row(markup_safe(r.held_out, one_line=True), markup_safe(r.point), markup_safe(settings),
                      labels[r.relation], markup_safe(r.metric), f"{r.measured:.4g}", f"{r.predicted:.4g}",
                      f"{r.error:+.1%}{verdict}", "-" if r.target is None else f"±{r.target:.0%}", band,
                      markup_safe(r.calibrated_on))
    console.print(table)
    console.print(markup_safe(report.message))
    for point in sorted({r.point for r in report.rows}):
        row = next(r for r in report.rows if r.point == point)
        console.print(f"source {markup_safe(point)}: {markup_safe(row.source)}")
    for point, why in excluded:
        console.print(f"excluded {markup_safe(point)}: {markup_safe(why)}")
    for note in notes:
        console.print(f"note: {markup_safe(note)}")
