"""`svdops facts|check --host/--inventory`: the same probes and rules over SSH, many hosts at once.

Output: per-host detail (the single-host tables), then a fleet summary (one row per host); or JSON
(`svdops.fleet-facts/1`, `svdops.fleet-check/1`) or JUnit (one testsuite per host). A progress bar
runs on stderr while hosts answer (only on a terminal).

Exit codes, most severe first: 3 when any host could not be checked (unreachable, auth failed,
host key unknown/changed, timeout, error), else 1 when any host failed a check, else 0. A host nobody
looked at outranks a known failure: the fleet's state is unknown, and automation must see that.
"""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from svdops.errors import BadInputError
from svdops.host.facts import HostFacts
from svdops.host.fleet import FleetOptions, FleetTally, HostResult, HostStatus, fleet_exit_code, probe_fleet
from svdops.host.inventory import Target, select_targets
from svdops.judge.check import CheckReport, run_check

FLEET_FACTS_SCHEMA = "svdops.fleet-facts/1"
FLEET_CHECK_SCHEMA = "svdops.fleet-check/1"
_STATUS_STYLE = {HostStatus.OK: "green", HostStatus.TIMEOUT: "yellow"}
NA = "n/a"


def run_fleet_command(
    kind: str,
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
) -> int:
    """Probe (and for kind 'check', judge) every selected host; render; return the exit code."""
    from svdops.cli.check_cmds import _write

    if from_dir is not None:
        raise BadInputError("--from-dir replays one recorded host; it cannot be combined with --host/--inventory",
                            hint="replay one host of a fleet bundle with `svdops check --from-dir BUNDLE/HOST`")
    if identity is not None and not identity.is_file():
        raise BadInputError("identity file not found", where=str(identity), hint="give -i the private key file")
    targets = select_targets(hosts=hosts, inventory=inventory, limit=limit, identity=identity)
    if not targets:
        raise BadInputError("no hosts to probe", hint="give --host HOST or --inventory FILE")
    profile_obj = None
    if kind == "check":
        from svdops.judge.profiles import DEFAULT_PROFILE, load_profile

        # a bad profile is exit 2 before we open a hundred connections, not a hundred errors after
        profile_obj = load_profile(profile or DEFAULT_PROFILE)
    options = FleetOptions(forks=forks, connect_timeout_s=connect_timeout, command_timeout_s=command_timeout,
                           accept_new_host_keys=accept_new_host_keys, python=python, bundle_dir=bundle)

    results = _probe_with_progress(targets, options)
    reports: dict[str, CheckReport] = {}
    if kind == "check":
        for r in results:
            if r.ok and r.facts is not None:
                reports[r.target.name] = run_check(r.facts, profile or None)

    if kind == "facts":
        text = fleet_facts_json(results) + "\n" if fmt == "json" else _render_table(results, None, verbose, output)
    elif fmt == "json":
        text = fleet_check_json(results, reports, profile_obj.name if profile_obj else "") + "\n"
    elif fmt == "junit":
        text = fleet_junit(results, reports)
    else:
        text = _render_table(results, reports, verbose, output)
    if text is not None:
        _write(text, output)
    code = fleet_exit_code(results, any_failed=any(rep.failed for rep in reports.values()))
    if output is not None or fmt != "table":
        click.echo(_footer(results, reports) + (f"; written to {output}" if output else ""), err=True)
    if bundle is not None:
        click.echo(f"raw outputs kept in {bundle}/<host>/ (replay one: svdops check --from-dir {bundle}/HOST)",
                   err=True)
    return code


def _probe_with_progress(targets: Sequence[Target], options: FleetOptions) -> list[HostResult]:
    console = Console(stderr=True)
    if not console.is_terminal:
        return probe_fleet(targets, options)
    progress = fleet_progress(console)
    with progress:
        task = progress.add_task(_progress_text({}), total=len(targets))
        counts: dict[str, int] = {}

        def done(result: HostResult) -> None:
            counts[result.status.value] = counts.get(result.status.value, 0) + 1
            progress.update(task, advance=1, description=_progress_text(counts))

        return probe_fleet(targets, options, on_result=done)


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


def _render_table(results: Sequence[HostResult], reports: dict[str, CheckReport] | None, verbose: bool,
                  output: Path | None) -> str | None:
    """Per-host detail, then the summary. To a file: plain text; to a terminal: printed in colour."""
    from svdops.cli import render

    buffer = io.StringIO() if output is not None else None
    console = Console(file=buffer, width=140, no_color=True) if buffer is not None else Console()
    for r in results:
        console.rule(f"[bold]{r.target.name}[/bold]  {r.target.url}  ({r.status.value})", align="left")
        if reports is not None and r.target.name in reports:
            render.findings_table(reports[r.target.name], console, verbose=verbose)
        elif reports is None and r.ok and r.facts is not None:
            render.facts_table(r.facts, console)
        else:
            console.print(Text(f"{r.status.value}: {r.message}", style=_STATUS_STYLE.get(r.status, "bold red")))
            if r.hint:
                console.print(f"hint: {r.hint}", soft_wrap=True, highlight=False, markup=False)
    console.print()
    console.print(summary_table(results, reports))
    console.print(_footer(results, reports or {}))
    return buffer.getvalue() if buffer is not None else None


def summary_table(results: Sequence[HostResult], reports: dict[str, CheckReport] | None) -> Table:
    title = "Fleet check" if reports is not None else "Fleet facts"
    if reports:
        title += f" against profile '{next(iter(reports.values())).profile.name}'"
    table = Table(title=title, title_justify="left")
    table.add_column("host", style="bold")
    table.add_column("status")
    if reports is not None:
        for col in ("pass", "warn", "fail"):
            table.add_column(col, justify="right")
    table.add_column("GPUs")
    table.add_column("driver")
    if reports is None:
        table.add_column("CUDA")
        table.add_column("OS")
    table.add_column("time", justify="right")
    for r in results:
        status = _status_cell(r, reports)
        row: list[str | Text] = [r.target.name, status]
        if reports is not None:
            rep = reports.get(r.target.name)
            if rep is not None:
                s = rep.summary
                row += [str(s.get("pass", 0)), str(s.get("warn", 0)), str(s.get("fail", 0))]
            else:
                row += ["-", "-", "-"]
        row += [gpu_summary(r.facts) if r.ok else "-", driver_summary(r.facts) if r.ok else "-"]
        if reports is None:
            row += [_cuda(r.facts) if r.ok else "-", _os(r.facts) if r.ok else "-"]
        row.append(f"{r.duration_s:.1f} s")
        table.add_row(*row)
    return table


def _status_cell(r: HostResult, reports: dict[str, CheckReport] | None) -> Text:
    if not r.ok:
        return Text(r.status.value, style=_STATUS_STYLE.get(r.status, "bold red"))
    rep = (reports or {}).get(r.target.name)
    if rep is not None and rep.failed:
        return Text("failed checks", style="bold red")
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


def _footer(results: Sequence[HostResult], reports: dict[str, CheckReport]) -> str:
    tally = FleetTally.of(results)
    ok = tally.by_status[HostStatus.OK.value]
    text = f"{len(results)} hosts: {ok} {'checked' if reports else 'probed'}"
    failed = sum(1 for rep in reports.values() if rep.failed)
    if reports:
        text += f" ({failed} with failed checks)"
    if tally.not_checked:
        parts = [f"{n} {s}" for s, n in tally.by_status.items() if n and s != HostStatus.OK.value]
        text += f", {tally.not_checked} not {'checked' if reports else 'probed'} ({', '.join(parts)})"
    return text


# ---------------------------------------------------------------- JSON and JUnit


def _host_dict(r: HostResult) -> dict[str, Any]:
    t = r.target
    return {
        "name": t.name, "address": t.address, "port": t.port, "user": t.user, "groups": list(t.groups),
        "status": r.status.value, "message": r.message, "hint": r.hint,
        "duration_s": round(r.duration_s, 3), "bundle": str(r.bundle) if r.bundle else None,
    }


def fleet_facts_json(results: Sequence[HostResult]) -> str:
    tally = FleetTally.of(results)
    payload = {
        "schema": FLEET_FACTS_SCHEMA,
        "summary": {"hosts": len(results), "not_probed": tally.not_checked, "by_status": tally.by_status},
        "hosts": [{**_host_dict(r), "facts": r.facts.to_dict() if r.facts else None} for r in results],
    }
    return json.dumps(payload, indent=2)


def fleet_check_json(results: Sequence[HostResult], reports: dict[str, CheckReport], profile: str) -> str:
    from svdops.cli.render import check_json

    tally = FleetTally.of(results)
    failed = sum(1 for rep in reports.values() if rep.failed)
    hosts = []
    for r in results:
        rep = reports.get(r.target.name)
        hosts.append({**_host_dict(r), "check": json.loads(check_json(rep)) if rep else None})
    payload = {
        "schema": FLEET_CHECK_SCHEMA,
        "profile": profile,
        "exit_code": fleet_exit_code(results, any_failed=failed > 0),
        "summary": {"hosts": len(results), "checked": len(reports), "failed": failed,
                    "not_checked": tally.not_checked, "by_status": tally.by_status},
        "hosts": hosts,
    }
    return json.dumps(payload, indent=2)


def fleet_junit(results: Sequence[HostResult], reports: dict[str, CheckReport]) -> str:
    """One testsuite per host (the single-host suite for checked hosts); an unchecked host is a suite
    with one errored testcase, so CI shows it red instead of silently missing."""
    from svdops.cli.render import check_junit

    suites = ET.Element("testsuites", name="svdops fleet")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for r in results:
        rep = reports.get(r.target.name)
        if rep is not None:
            # re-reading our own check_junit output, not untrusted XML
            suite = ET.fromstring(check_junit(rep).split("\n", 1)[1]).find("testsuite")  # noqa: S314
            assert suite is not None  # check_junit always writes one
            suite.set("name", f"svdops check {r.target.name} ({rep.profile.name})")
        else:
            suite = ET.Element("testsuite", name=f"svdops check {r.target.name}", tests="1", failures="0",
                               errors="1", skipped="0", hostname=r.target.name)
            case = ET.SubElement(suite, "testcase", classname="svdops.ssh", name=f"{r.target.name}: reachable")
            error = ET.SubElement(case, "error", message=f"{r.status.value}: {r.message}",
                                  type=f"svdops.{r.status.name.lower()}")
            error.text = f"{r.target.url}\n{r.message}" + (f"\nfix: {r.hint}" if r.hint else "")
        for key in totals:
            totals[key] += int(suite.get(key, "0"))
        suites.append(suite)
    for key, value in totals.items():
        suites.set(key, str(value))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
