"""Frames -> one self-contained HTML file: the core of `svdops report` and `svdops bench --report`.

Nothing here prints or exits. The HTML has no script and no external reference of any kind, and
says so in its Content-Security-Policy, so a browser opening it from a ticket makes no request.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from svdops import __version__
from svdops.errors import BadInputError, MissingDependencyError
from svdops.files import atomic_path, atomic_write_bytes
from svdops.report import charts
from svdops.report.burnin import burnin_sections
from svdops.report.checks import CheckSet, load_checks
from svdops.report.frames import (
    RANK_COLUMNS,
    check_tabulates,
    environment_frame,
    groups_frame,
    points_frame,
    runs_frame,
)
from svdops.report.scaling import nccl_frame, scaling_frame
from svdops.report.selection import Prices, RunFilter, find_runs
from svdops.report.telemetry_series import pick_telemetry_runs, read_telemetry
from svdops.runs.store import Run
from svdops.text import printable

RANK_TITLES = {
    "videos_per_hour": "videos per hour (higher is better)",
    "cost": "USD per 1,000 videos (lower is better)",
    "energy": "energy per video (lower is better)",
}
STAGES = (
    charts.Segment("encode_s", "encode (CLIP + VAE)", "c-encode"),
    charts.Segment("unet_s", "UNet", "c-unet"),
    charts.Segment("decode_s", "VAE decode", "c-decode"),
    charts.Segment("other_s", "other", "c-other"),
)
MAX_BARS_PER_SCENARIO = 40  # a chart taller than a screen stops being read; the tables keep every row


@dataclass(frozen=True)
class ReportOptions:
    title: str = "svdops report"
    run_filter: RunFilter = field(default_factory=RunFilter)
    checks: tuple[Path, ...] = ()
    prices: Prices = field(default_factory=Prices)
    rank_by: str = "videos_per_hour"
    telemetry_runs: int = 6


@dataclass(frozen=True)
class ReportData:
    """Everything a report shows, as frames: what the template renders and `--export` writes."""

    runs: list[Run]
    run_table: pd.DataFrame
    points: pd.DataFrame
    groups: pd.DataFrame
    environment: pd.DataFrame
    checks: CheckSet
    scaling: pd.DataFrame
    nccl: pd.DataFrame
    skipped: list[str]
    options: ReportOptions


@dataclass(frozen=True)
class ReportResult:
    output: Path
    runs: int
    hosts: int
    points: int
    skipped: list[str]
    export: Path | None = None


def build_report(run_args: Sequence[str], options: ReportOptions) -> ReportData:
    if options.rank_by not in RANK_COLUMNS:
        raise BadInputError(
            f"unknown ranking metric {options.rank_by!r}",
            where="--rank-by",
            hint=f"use one of {', '.join(RANK_COLUMNS)}",
        )
    if options.rank_by == "cost" and not options.prices:
        raise BadInputError(
            "--rank-by cost needs prices",
            where="--rank-by",
            hint="price the GPUs (--price GPU=USD_PER_GPU_HOUR) or whole hosts (--host-price HOST=USD_PER_HOUR)",
        )
    selection = find_runs(run_args, options.run_filter, usable=lambda run: check_tabulates(run, options.prices))
    if not selection.runs:
        filters = options.run_filter.describe()
        raise BadInputError(
            f"no run to report: {selection.matched_before_filter} run(s) found"
            + (f", none matching {', '.join(filters)}" if filters else "")
            + (f"; {len(selection.skipped)} left out, first {selection.skipped[0]}" if selection.skipped else ""),
            where=" ".join(run_args) or "RUNS",
            hint="run `svdops bench` first, or loosen --host/--scenario/--since"
            if selection.matched_before_filter == 0 or not filters
            else "loosen --host/--scenario/--since",
        )
    points = points_frame(selection.runs, options.prices)
    checks = load_checks(options.checks)
    return ReportData(
        runs=selection.runs,
        run_table=runs_frame(selection.runs),
        points=points,
        groups=groups_frame(points, options.rank_by),
        environment=environment_frame(selection.runs),
        checks=checks,
        scaling=scaling_frame(selection.runs),
        nccl=nccl_frame(selection.runs),
        skipped=[*selection.skipped, *checks.skipped],
        options=options,
    )


def write_report(
    run_args: Sequence[str],
    output: str | os.PathLike[str],
    options: ReportOptions | None = None,
    export: str | os.PathLike[str] | None = None,
) -> ReportResult:
    """Build the report, write the HTML (and the merged table when `export` is given) atomically."""
    options = options or ReportOptions()
    export_path = Path(export) if export else None
    if export_path is not None:
        _export_format(export_path)  # a bad suffix fails before any work is done
    data = build_report(run_args, options)
    out = Path(output)
    _atomic_write(out, render_html(data).encode("utf-8"))
    if export_path is not None:
        export_table(data.points, export_path)
    return ReportResult(
        output=out,
        runs=len(data.runs),
        hosts=data.run_table["host"].nunique(),
        points=len(data.points),
        skipped=data.skipped,
        export=export_path,
    )


def _export_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise BadInputError(
        f"cannot tell the export format from {path.name!r}", where="--export", hint="name the file *.csv or *.parquet"
    )


def export_table(points: pd.DataFrame, path: Path) -> None:
    """The merged per-point table, one row per configuration point of every run."""
    fmt = _export_format(path)
    try:
        with atomic_path(path) as tmp:
            if fmt == "csv":
                points.to_csv(tmp, index=False)
            else:
                try:
                    points.to_parquet(tmp, index=False)
                except ImportError as exc:
                    raise MissingDependencyError(
                        f"Parquet export needs pyarrow: {exc}", hint="pip install pyarrow, or export to a .csv file"
                    ) from exc
    except OSError as exc:
        raise BadInputError(f"cannot write the export: {exc.strerror}", where=str(path)) from exc


def _atomic_write(path: Path, data: bytes) -> None:
    """A half-written report attached to a ticket is worse than none."""
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        raise BadInputError(
            f"cannot write the report: {exc.strerror}", where=str(path), hint="pass a writable path with -o FILE"
        ) from exc


# --- HTML --------------------------------------------------------------------------------------------


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("svdops.report", "templates"),
        autoescape=True,  # host names, notes and check hints are untrusted text
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _num_filter
    env.filters["pct"] = _pct_filter
    env.filters["when"] = _when_filter
    env.filters["cell"] = _cell_filter
    # A check file's folder says where it sat on the machine that rendered the report: not worth sharing.
    env.filters["basename"] = lambda path: Path(str(path)).name
    env.tests["missing"] = _is_missing
    return env


def _is_missing(value: Any) -> bool:
    # Called for every table cell: plain checks first, pandas' isna only for its own sentinels.
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, str | int | bool | list | dict):
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _num_filter(value: Any, digits: int = 1) -> str:
    if _is_missing(value) or not isinstance(value, int | float):
        return "–"
    return charts.fmt_number(float(value), digits)


def _pct_filter(value: Any, digits: int = 1) -> str:
    if _is_missing(value) or not isinstance(value, int | float):
        return "–"
    return f"{float(value) * 100:.{digits}f}%"


def _cell_filter(value: Any) -> str:
    """A table cell of unknown kind: whole numbers without decimals, others with up to three."""
    if _is_missing(value):
        return "–"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.1f}"


def _when_filter(value: Any) -> str:
    if _is_missing(value):
        return "–"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return str(value)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts with NaN as None, so templates test one thing (`is missing`)."""
    if frame.empty:
        return []
    return [{k: (None if _is_missing(v) else v) for k, v in row.items()} for row in frame.to_dict("records")]


def _label(row: Mapping[str, Any]) -> str:
    return f"{row['host']} · {row['config']}"


def _value(row: Mapping[str, Any], key: str) -> float | None:
    value = row.get(key)
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _ranking_blocks(data: ReportData) -> list[dict[str, Any]]:
    """Per scenario and workload (the same video): the ranked groups and a bar chart of the metric."""
    rank_column, _ = RANK_COLUMNS[data.options.rank_by]
    rank_digits = 0 if rank_column == "videos_per_hour" else 2
    rank_unit = {
        "videos_per_hour": "videos/h",
        "cost_per_1000_usd": "USD / 1,000 videos",
        "energy_j_per_video": "J/video",
    }[rank_column]
    blocks = []
    for (scenario, workload), frame in data.groups.groupby(["scenario", "workload"], sort=True):
        rows = _records(frame)
        shown = rows[:MAX_BARS_PER_SCENARIO]
        bars = [
            charts.Bar(
                _label(r),
                _value(r, rank_column),
                note="" if _value(r, rank_column) is not None else _why_missing(r, rank_column),
                css="c-bar-ref" if r["reference"] else "c-bar",
            )
            for r in shown
        ]
        title = f"{scenario}, {workload}: {RANK_TITLES[data.options.rank_by]}"
        blocks.append(
            {
                "scenario": scenario,
                "workload": workload,
                "rows": rows,
                "truncated": len(rows) - len(shown),
                "chart": charts.bar_chart(bars, unit=rank_unit, digits=rank_digits, title=title),
            }
        )
    return blocks


def _chart_blocks(data: ReportData) -> list[dict[str, Any]]:
    """Per scenario: stages, VRAM and energy of every host and configuration (workloads together)."""
    blocks = []
    for scenario, frame in data.groups.groupby("scenario", sort=True):
        rows = _records(frame.sort_values(["workload", "rank", "host"], na_position="last", kind="stable"))
        shown = rows[:MAX_BARS_PER_SCENARIO]
        stage_rows = [
            charts.Stack(_label(r), {s.key: _value(r, s.key) for s in STAGES}, note=_why_missing(r, "e2e_p50_s"))
            for r in shown
        ]
        memory_rows = [
            charts.Memory(
                _label(r),
                _value(r, "peak_allocated_gib"),
                _value(r, "peak_reserved_gib"),
                _value(r, "gpu_memory_gib"),
                note=_memory_note(r),
                oom="oom" in r["statuses"],
            )
            for r in shown
        ]
        energy_bars = [
            charts.Bar(
                _label(r),
                None if _value(r, "energy_j_per_video") is None else r["energy_j_per_video"] / 1000,
                note=(
                    f"{r['kwh_per_1000']:.2f} kWh per 1,000 videos" if _value(r, "kwh_per_1000") else _energy_note(r)
                ),
                css="c-energy",
            )
            for r in shown
        ]
        blocks.append(
            {
                "scenario": scenario,
                "truncated": len(rows) - len(shown),
                "stage_chart": charts.stacked_bars(stage_rows, STAGES, title=f"{scenario}: seconds per video by stage"),
                "memory_chart": charts.memory_bars(memory_rows, title=f"{scenario}: VRAM peaks against capacity"),
                "energy_chart": charts.bar_chart(
                    energy_bars, unit="kJ/video", digits=2, title=f"{scenario}: energy per video"
                )
                if any(b.value is not None for b in energy_bars)
                else None,
            }
        )
    return blocks


def _why_missing(row: Mapping[str, Any], column: str) -> str:
    if row["failed"] and not row["runs"] - row["failed"]:
        return f"no finished run ({row['statuses']})"
    if column == "cost_per_1000_usd" and row.get("price_usd_per_hour") is None:
        return "no price for this GPU or host (--price GPU=USD_PER_GPU_HOUR, --host-price HOST=USD_PER_HOUR)"
    if column == "energy_j_per_video":
        return _energy_note(row)
    return "not measured"


def _energy_note(row: Mapping[str, Any]) -> str:
    if row["gpu"] == "CPU":
        return "not measured: CPU run (NVML reports NVIDIA GPUs only)"
    return "not measured: no NVML energy samples in these runs"


def _memory_note(row: Mapping[str, Any]) -> str:
    if row["gpu"] == "CPU":
        return "CPU run: no GPU memory"
    if "oom" in row["statuses"] and row["runs"] == row["failed"]:
        return "out of memory"
    return "not recorded"


def _telemetry_sections(data: ReportData) -> tuple[list[dict[str, Any]], int]:
    picked, available = pick_telemetry_runs(data.runs, data.options.telemetry_runs)
    sections = []
    for run in picked:
        series = read_telemetry(run)
        if series is None:
            continue
        summary = series.summary
        reasons = summary.clocks_event_reasons or {}
        sections.append(
            {
                "run": run.name,
                "host": series.host,
                "gpu": series.gpu,
                "reference": run.results.is_reference,
                "chart": charts.telemetry_chart(series),
                "summary": summary.to_json(),
                "reasons": sorted(reasons.items(), key=lambda kv: -kv[1]),
                "note": series.note,
                "marks_reconstructed": any("reconstructed" in n for n in run.results.notes),
            }
        )
    return sections, available


def _extra_table(frame: pd.DataFrame) -> dict[str, Any] | None:
    if frame.empty:
        return None
    columns = [str(c) for c in frame.columns]
    return {"columns": columns, "rows": [[row.get(c) for c in columns] for row in _records(frame)]}


def _points(frame: pd.DataFrame, x: str, y: str) -> list[tuple[float, float]]:
    pairs = zip(pd.to_numeric(frame[x], errors="coerce"), pd.to_numeric(frame[y], errors="coerce"), strict=True)
    return [(float(a), float(b)) for a, b in pairs if pd.notna(a) and pd.notna(b)]


def _scaling_chart(frame: pd.DataFrame) -> Markup | None:
    """Throughput against GPU count per host and workload; the single-GPU baseline is the 1-GPU point."""
    if frame.empty:
        return None
    series: dict[str, list[tuple[float, float]]] = {}
    ideal: list[tuple[float, float]] = []
    units = set()
    for (host, workload, unit), part in frame.groupby(["host", "workload", "unit"], sort=False, dropna=False):
        pts = _points(part, "world_size", "throughput")
        base = pd.to_numeric(part["baseline"], errors="coerce").dropna()
        if not base.empty:
            pts.append((1.0, float(base.median())))
        if not pts:
            continue
        units.add(str(unit))
        pts = sorted(set(pts))
        series[f"{host} {workload}"] = pts
        if not ideal and not base.empty:
            top = max(x for x, _ in pts)
            ideal = [(1.0, float(base.median())), (top, float(base.median()) * top)]
    if not series:
        return None
    return charts.line_chart(
        series,
        x_label="GPUs (world size)",
        y_label=" / ".join(sorted(units)),
        ideal=ideal,
        title="multi-GPU scaling (dashed: linear from one GPU)",
    )


def _nccl_chart(frame: pd.DataFrame) -> Markup | None:
    y = next((c for c in ("busbw_gbps", "algbw_gbps") if c in frame), None)
    if frame.empty or "size_bytes" not in frame or y is None:
        return None
    series: dict[str, list[tuple[float, float]]] = {}
    for (host, run, world), part in frame.groupby(["host", "run", "world_size"], sort=False, dropna=False):
        pts = _points(part, "size_bytes", y)
        if pts:
            ranks = f", {int(world)} ranks" if pd.notna(world) else ""
            series[f"{host}{ranks} ({run[:16]})"] = pts
    if not series:
        return None
    return charts.line_chart(
        series,
        x_label="all-reduce size (bytes)",
        y_label=f"{y.replace('_gbps', '')} GB/s",
        log_x=True,
        title="NCCL all-reduce bandwidth by message size",
    )


# listed with their fix, worst first; the rest (pass, skip) is one quiet line. A check that could not look
# is as loud as a failure: it is not a pass
PROMINENT = ("fail", "unknown", "warn")


def render_html(data: ReportData) -> str:
    options = data.options
    telemetry, telemetry_available = _telemetry_sections(data)
    points = data.points
    if not points.empty:
        column, larger = RANK_COLUMNS[options.rank_by]
        points = points.sort_values(
            ["scenario", column, "host", "run"],
            ascending=[True, not larger, True, True],
            na_position="last",
            kind="stable",
        )
    findings = data.checks.findings
    check_hosts = []
    for entry in data.checks.hosts:
        mine = findings[findings["host"] == entry["host"]] if not findings.empty else findings
        shown = mine[mine["status"].isin(PROMINENT)] if not mine.empty else mine
        check_hosts.append(
            {
                **entry,
                "findings": _records(shown),
                "quiet": _records(mine[~mine["status"].isin(PROMINENT)]) if not mine.empty else [],
            }
        )
    run_hosts = set(data.run_table["host"])
    context = {
        "title": options.title,
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "version": __version__,
        "filters": options.run_filter.describe(),
        "rank_by": options.rank_by,
        "rank_title": RANK_TITLES[options.rank_by],
        "prices": {**options.prices.gpus, **options.prices.hosts},
        "runs": _records(data.run_table),
        "n_hosts": data.run_table["host"].nunique(),
        "references": sorted(set(data.run_table.loc[data.run_table["reference"], "provenance"].dropna())),
        "points": _records(points),
        "ranking": _ranking_blocks(data),
        "blocks": _chart_blocks(data),
        "environment": _records(data.environment),
        "check_hosts": check_hosts,
        "checks_without_runs": sorted({h["host"] for h in data.checks.hosts} - run_hosts),
        "telemetry": telemetry,
        "telemetry_available": telemetry_available,
        "has_cost": bool(options.prices),
        "cost_rows": _records(data.groups[data.groups["price_usd_per_hour"].notna()]) if options.prices else [],
        "unpriced_hosts": sorted(set(points.loc[points["price_usd_per_hour"].isna(), "host"]))
        if options.prices else [],
        "scaling": _extra_table(data.scaling),
        "scaling_chart": _scaling_chart(data.scaling),
        "nccl": _extra_table(data.nccl),
        "nccl_chart": _nccl_chart(data.nccl),
        "burnin": burnin_sections(data.runs),
        "skipped": data.skipped,
        "MAX_BARS": MAX_BARS_PER_SCENARIO,
    }
    # autoescape keeps markup out; control characters from host names, notes and check files (ESC, NUL, C1,
    # bidi overrides) pass it untouched. Our template and charts write none, so the whole page is cleaned.
    return printable(_environment().get_template("report.html.j2").render(**context))
