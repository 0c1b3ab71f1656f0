"""`svdops facts|check --host/--inventory`: options in, tables and files out (svdops.judge.fleet_check does the work).

Output: per-host detail (the single-host tables), then a fleet summary (one row per host); or JSON
(`svdops.fleet-facts/1`, `svdops.fleet-check/1`) or JUnit (one testsuite per host), both built by
svdops.judge.documents. A progress bar runs on stderr while hosts answer (only on a terminal).
Host labels, addresses, messages and every name a host reported go through svdops.text before rich
sees them: one host whose GPU is called `[/]` must not cost the other hosts their tables.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from svdops.cli import render
from svdops.errors import BadInputError
from svdops.host.facts import HostFacts
from svdops.host.fleet import FleetOptions, HostResult, HostStatus
from svdops.judge import documents
from svdops.judge.check import CheckReport, check_profile
from svdops.judge.fleet_check import FleetCheck, FleetFacts, check_fleet, fleet_targets, gather_fleet
from svdops.text import markup_safe, printable

_STATUS_STYLE = {HostStatus.OK: "green", HostStatus.TIMEOUT: "yellow"}
NA = "n/a"
T = TypeVar("T")


def _refuse_from_dir(from_dir: Path | None) -> None:
    if from_dir is not None:
        raise BadInputError("--from-dir replays one recorded host; it cannot be combined with --host/--inventory",
                            hint="replay one host of a fleet bundle with `svdops check --from-dir BUNDLE/HOST`")


def _options(bundle: Path | None, python: str, forks: int, connect_timeout: float, command_timeout: float,
             accept_new_host_keys: bool) -> FleetOptions:
    return FleetOptions(forks=forks, connect_timeout_s=connect_timeout, command_timeout_s=command_timeout,
                        accept_new_host_keys=accept_new_host_keys, python=python, bundle_dir=bundle)


def run_fleet_facts(
    *,
    as_json: bool,
    output: Path | None,
    bundle: Path | None,
    python: str,
    from_dir: Path | None,
    hosts: Sequence[str],
    inventory: Path | None,
    limit: str | None,
    identity: Path | None,
    forks: int,
    connect_timeout: float,
    command_timeout: float,
    accept_new_host_keys: bool,
) -> int:
    """Probe every selected host; render; return the exit code."""
    _refuse_from_dir(from_dir)
    targets = fleet_targets(hosts=hosts, inventory=inventory, limit=limit, identity=identity)
    options = _options(bundle, python, forks, connect_timeout, command_timeout, accept_new_host_keys)
    fleet = _until_interrupted(lambda on_result: gather_fleet(targets, options, on_result=on_result),
                               len(targets), output, bundle)
    if as_json:
        render.write_output(documents.json_text(documents.fleet_facts_document(fleet)), output)
    else:
        _write_tables(lambda console: _facts_tables(fleet, console), output)
    _say_where(fleet_footer(fleet), output, bundle, always=as_json)
    return fleet.exit_code


def run_fleet_check(
    *,
    profile: str | None,
    fmt: str,
    output: Path | None,
    verbose: bool,
    bundle: Path | None,
    python: str,
    from_dir: Path | None,
    hosts: Sequence[str],
    inventory: Path | None,
    limit: str | None,
    identity: Path | None,
    forks: int,
    connect_timeout: float,
    command_timeout: float,
    accept_new_host_keys: bool,
    allow_unknown: bool = False,
) -> int:
    """Probe and judge every selected host; render; return the exit code."""
    _refuse_from_dir(from_dir)
    targets = fleet_targets(hosts=hosts, inventory=inventory, limit=limit, identity=identity)
    # a bad profile is exit 2 before we open a hundred connections, not a hundred errors after
    judged_against = check_profile(profile)
    options = _options(bundle, python, forks, connect_timeout, command_timeout, accept_new_host_keys)
    fleet = _until_interrupted(
        lambda on_result: check_fleet(targets, options, judged_against, on_result=on_result,
                                      allow_unknown=allow_unknown),
        len(targets), output, bundle)
    if fmt == "json":
        render.write_output(documents.json_text(documents.fleet_check_document(fleet)), output)
    elif fmt == "junit":
        render.write_output(documents.junit_text(documents.fleet_junit(fleet)), output)
    else:
        _write_tables(lambda console: _check_tables(fleet, console, verbose), output)
    _say_where(fleet_footer(fleet), output, bundle, always=fmt != "table")
    return fleet.exit_code


def _until_interrupted(run: Callable[[Callable[[HostResult], None]], T], total: int, output: Path | None,
                       bundle: Path | None) -> T:
    """`run` with the progress bar; on Ctrl-C, say on stderr what became of the answers, then re-raise (exit 130).

    Nothing is written on Ctrl-C: a document of some hosts would read as the whole fleet. The hosts that
    answered are counted, and their raw outputs stay in --bundle where one was given."""
    answered = 0
    with host_progress(total) as progress:

        def on_result(result: HostResult) -> None:
            nonlocal answered
            answered += 1
            if progress is not None:
                progress(result)

        try:
            return run(on_result)
        except KeyboardInterrupt:
            when = f"after {answered} of {total} hosts answered" if answered else \
                f"before any of the {total} hosts answered"
            text = f"interrupted {when}: " + (f"nothing written to {output}" if output else "no report printed")
            if bundle is not None and answered:
                text += f"; the raw outputs of those that answered are in {bundle}/"
            click.echo(text, err=True)
            raise


def _say_where(footer: str, output: Path | None, bundle: Path | None, *, always: bool) -> None:
    """On stderr: the summary line (for files and machine formats, whose stdout is the document) and the bundle."""
    if output is not None or always:
        click.echo(footer + (f"; written to {printable(str(output))}" if output else ""), err=True)
    if bundle is not None:
        shown = printable(str(bundle))
        click.echo(f"raw outputs kept in {shown}/<host>/ (replay one: svdops check --from-dir {shown}/HOST)",
                   err=True)


@contextmanager
def host_progress(total: int) -> Iterator[Callable[[HostResult], None] | None]:
    """A progress bar on stderr while hosts answer, and the callback that advances it; none off a terminal."""
    console = Console(stderr=True)
    if not console.is_terminal:
        yield None
        return
    progress = fleet_progress(console)
    with progress:
        task = progress.add_task(_progress_text({}), total=total)
        counts: dict[str, int] = {}

        def done(result: HostResult) -> None:
            counts[result.status.value] = counts.get(result.status.value, 0) + 1
            progress.update(task, advance=1, description=_progress_text(counts))

        yield done


def fleet_progress(console: Console) -> Progress:
    """The bar shown while hosts answer: done/total, elapsed, and how many answered which way."""
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=True)


def _progress_text(counts: dict[str, int]) -> str:
    if not counts:
        return "probing hosts"
    parts = [f"{n} {status}" for status, n in sorted(counts.items(), key=lambda kv: kv[0] != "ok")]
    return "probing hosts: " + ", ".join(parts)


# ---------------------------------------------------------------- tables


def _write_tables(draw: Callable[[Console], None], output: Path | None) -> None:
    """To a file: plain text at 140 columns; to a terminal: printed in colour."""
    if output is None:
        draw(Console(emoji=False))
        return
    buffer = io.StringIO()
    draw(render.file_console(buffer, 140))
    render.write_output(buffer.getvalue(), output)


def _host_rule(r: HostResult, console: Console) -> None:
    name, url = markup_safe(r.target.name, one_line=True), markup_safe(r.target.url, one_line=True)
    console.rule(f"[bold]{name}[/bold]  {url}  ({r.status.value})", align="left")


def _why_not(r: HostResult, console: Console) -> None:
    console.print(Text(f"{r.status.value}: {printable(r.message)}", style=_STATUS_STYLE.get(r.status, "bold red")))
    if r.hint:
        console.print(f"hint: {printable(r.hint)}", soft_wrap=True, highlight=False, markup=False, emoji=False)


def _check_tables(fleet: FleetCheck, console: Console, verbose: bool) -> None:
    """Per-host findings (or why a host has none), then the summary."""
    for h in fleet.hosts:
        _host_rule(h.probe, console)
        if h.report is not None:
            render.findings_table(h.report, console, verbose=verbose)
        else:
            _why_not(h.probe, console)
    console.print()
    console.print(summary_table(fleet))
    console.print(fleet_footer(fleet))


def _facts_tables(fleet: FleetFacts, console: Console) -> None:
    for r in fleet.hosts:
        _host_rule(r, console)
        if r.ok and r.facts is not None:
            render.facts_table(r.facts, console)
        else:
            _why_not(r, console)
    console.print()
    console.print(summary_table(fleet))
    console.print(fleet_footer(fleet))


def summary_table(fleet: FleetCheck | FleetFacts) -> Table:
    """One row per host: its status and, for a check, its pass/warn/fail/unknown counts."""
    checked = isinstance(fleet, FleetCheck)
    rows: list[tuple[HostResult, CheckReport | None]]
    if isinstance(fleet, FleetCheck):
        title = f"Fleet check against profile '{markup_safe(fleet.profile.name, one_line=True)}'"
        rows = [(h.probe, h.report) for h in fleet.hosts]
    else:
        title, rows = "Fleet facts", [(r, None) for r in fleet.hosts]
    table = Table(title=title, title_justify="left")
    table.add_column("host", style="bold")
    table.add_column("status")
    if checked:
        for col in ("pass", "warn", "fail", "unknown"):
            table.add_column(col, justify="right")
    table.add_column("GPUs")
    table.add_column("driver")
    if not checked:
        table.add_column("CUDA")
        table.add_column("OS")
    table.add_column("time", justify="right")
    for r, rep in rows:
        row: list[str | Text] = [markup_safe(r.target.name, one_line=True), _status_cell(r, rep)]
        if checked:
            if rep is not None:
                s = rep.summary
                row += [str(s.get("pass", 0)), str(s.get("warn", 0)), str(s.get("fail", 0)), str(s.get("unknown", 0))]
            else:
                row += ["-", "-", "-", "-"]
        row += [markup_safe(gpu_summary(r.facts), one_line=True) if r.ok else "-",
                markup_safe(driver_summary(r.facts), one_line=True) if r.ok else "-"]
        if not checked:
            row += [markup_safe(_cuda(r.facts), one_line=True) if r.ok else "-",
                    markup_safe(_os(r.facts), one_line=True) if r.ok else "-"]
        row.append(f"{r.duration_s:.1f} s")
        table.add_row(*row)
    return table


def _status_cell(r: HostResult, rep: CheckReport | None) -> Text:
    if not r.ok:
        return Text(r.status.value, style=_STATUS_STYLE.get(r.status, "bold red"))
    if rep is not None and rep.summary.get("fail", 0):
        return Text("failed checks", style="bold red")
    if rep is not None and rep.unknown:
        # required checks that could not look: they fail the host unless unknowns are allowed
        return Text(f"{rep.unknown} unknown", style="bold red") if rep.failed else \
            Text(f"ok ({rep.unknown} unknown, allowed)", style="yellow")
    if rep is not None and rep.summary.get("warn", 0):
        return Text("ok (warnings)", style="yellow")
    return Text("ok", style="green")


def gpu_summary(facts: HostFacts | None) -> str:
    """`8x NVIDIA H100 80GB HBM3`; mixed models listed; `none` on a host without NVIDIA GPUs."""
    if facts is None:
        return NA
    if not facts.gpus:
        return "none"
    names: dict[str, int] = {}
    for gpu in facts.gpus:
        names[gpu.name] = names.get(gpu.name, 0) + 1
    return ", ".join(f"{n}x {name}" for name, n in names.items())


def driver_summary(facts: HostFacts | None) -> str:
    if facts is None:
        return NA
    d = facts.driver
    version = d.userspace_version or d.kernel_module_version
    if version is None:
        return "mismatch" if d.library_mismatch else NA
    return str(version) + (" (reboot needed)" if d.needs_reboot else "")


def _cuda(facts: HostFacts | None) -> str:
    if facts is None or facts.cuda.toolkit_version is None:
        return NA
    return str(facts.cuda.toolkit_version)


def _os(facts: HostFacts | None) -> str:
    if facts is None:
        return NA
    return facts.os.pretty_name or " ".join(filter(None, [facts.os.id, facts.os.version_id])) or NA


def fleet_footer(fleet: FleetCheck | FleetFacts) -> str:
    """`3 hosts: 2 checked (1 with failed checks), 1 not checked (1 unreachable)`."""
    tally = fleet.tally
    checking = isinstance(fleet, FleetCheck)
    done = "checked" if checking else "probed"
    text = f"{len(fleet.hosts)} hosts: {tally.by_status[HostStatus.OK.value]} {done}"
    if isinstance(fleet, FleetCheck):
        with_fail = sum(1 for h in fleet.hosts if h.report is not None and h.report.summary.get("fail", 0))
        only_unknown = fleet.failed - with_fail  # failed only on required checks that could not look
        text += f" ({with_fail} with failed checks" + (
            f", {only_unknown} with checks that could not look)" if only_unknown else ")")
    if tally.not_checked:
        parts = [f"{n} {s}" for s, n in tally.by_status.items() if n and s != HostStatus.OK.value]
        text += f", {tally.not_checked} not {done} ({', '.join(parts)})"
    return text
