"""`svdops report`: parse options, build the HTML report from run folders, say where it went."""

from __future__ import annotations

from pathlib import Path

import click

from svdops.cli.errors import handles_errors
from svdops.errors import MissingDependencyError
from svdops.extras import install_hint
from svdops.runs.store import DEFAULT_STORE
from svdops.text import printable

RANK_CHOICES = ("videos_per_hour", "cost", "energy")  # svdops.report.RANK_METRICS, without importing pandas


@click.command("report")
@click.argument("runs", nargs=-1, metavar="[RUNS]...")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    default="report.html",
    show_default=True,
    help="The HTML file to write.",
)
@click.option("--host", "hosts", multiple=True, metavar="PATTERN", help="Only these hosts (repeatable; gpu0* works).")
@click.option("--scenario", "scenarios", multiple=True, metavar="PATTERN", help="Only these scenarios (repeatable).")
@click.option(
    "--since", metavar="WHEN", help="Only runs started since: 2026-11-26, 2026-11-26T10:00, or 12h / 7d / 2w."
)
@click.option(
    "--check",
    "checks",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Findings from `svdops check --format json` (single host or fleet); repeatable.",
)
@click.option(
    "--price",
    "prices",
    multiple=True,
    metavar="GPU=USD_PER_GPU_HOUR",
    help="What an hour of one GPU of this model costs (as in `svdops plan`); adds cost per 1,000 videos. Repeatable.",
)
@click.option(
    "--host-price",
    "host_prices",
    multiple=True,
    metavar="HOST=USD_PER_HOUR",
    help="What an hour of a whole host costs (HOST may be a pattern); wins over --price. Repeatable.",
)
@click.option(
    "--rank-by",
    type=click.Choice(RANK_CHOICES),
    default="videos_per_hour",
    show_default=True,
    help="Order hosts by throughput, by cost per video (needs --price) or by energy per video.",
)
@click.option(
    "--export",
    type=click.Path(dir_okay=False, writable=True),
    metavar="FILE.csv|FILE.parquet",
    help="Also write the merged per-point table (format from the suffix).",
)
@click.option("--title", default="svdops report", show_default=True, help="The report's heading.")
@click.option(
    "--telemetry-runs",
    type=click.IntRange(min=0),
    default=6,
    show_default=True,
    help="At most this many telemetry charts (the newest run of each host first).",
)
@handles_errors
def report(
    runs: tuple[str, ...],
    output: str,
    hosts: tuple[str, ...],
    scenarios: tuple[str, ...],
    since: str | None,
    checks: tuple[Path, ...],
    prices: tuple[str, ...],
    host_prices: tuple[str, ...],
    rank_by: str,
    export: str | None,
    title: str,
    telemetry_runs: int,
) -> None:
    """One self-contained HTML file comparing benchmark runs and hosts.

    RUNS are run folders, stores of runs (every run inside) or globs; default: ./svdops-runs.

    \b
    svdops report svdops-runs/ -o report.html
    svdops report 'runs/*-gpu0*' --check gpu01.json --price 'H100 SXM=2.49' --rank-by cost
    svdops report store/ --since 7d --scenario svd-xt-25f --export table.parquet
    """
    try:
        from svdops.plan.prices import parse_gpu_prices
        from svdops.report import Prices, ReportOptions, RunFilter, parse_host_prices, parse_since, write_report
    except ImportError as exc:
        raise MissingDependencyError(
            f"the report needs its extra: {exc}", hint=install_hint("report")
        ) from exc
    options = ReportOptions(
        title=title,
        run_filter=RunFilter(hosts=hosts, scenarios=scenarios, since=parse_since(since) if since else None),
        checks=checks,
        prices=Prices(gpus=parse_gpu_prices(prices), hosts=parse_host_prices(host_prices)),
        rank_by=rank_by,
        telemetry_runs=telemetry_runs,
    )
    result = write_report(runs or (DEFAULT_STORE,), output, options, export=export)
    click.echo(f"report: {result.runs} run(s) from {result.hosts} host(s), {result.points} point(s) -> "
               f"{printable(str(result.output))}")
    if result.export:
        click.echo(f"table: {result.points} row(s) -> {printable(str(result.export))}")
    for why in result.skipped:  # names the run folders, whose names came with the runs
        click.echo(f"skipped: {printable(why)}", err=True)
