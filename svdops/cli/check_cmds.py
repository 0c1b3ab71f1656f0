"""`svdops facts`, `svdops check`, `svdops profiles`."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from svdops.cli.errors import handles_errors
from svdops.cli.render import write_output
from svdops.errors import BadInputError
from svdops.judge.check import FactsSource, check_profile, gather, run_check

_FROM_DIR = click.option(
    "--from-dir", type=click.Path(path_type=Path, file_okay=False),
    help="Replay a folder of recorded outputs (from `svdops facts --bundle`) instead of probing this host.",
)
_PYTHON = click.option(
    "--python", "python", default="python3", show_default=True, metavar="PATH",
    help="Interpreter of the target environment, e.g. /opt/conda/envs/svd/bin/python.",
)
_NO_NVML = click.option("--no-nvml", is_flag=True, help="Do not query NVML for live GPU values.")


def _fleet_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Options that turn facts/check into a fleet run over SSH (see svdops.host.fleet)."""
    options = [
        click.option("--host", "hosts", multiple=True, metavar="[USER@]HOST[:PORT]",
                     help="Probe this host over SSH (repeatable)."),
        click.option("--inventory", type=click.Path(path_type=Path),
                     help="Ansible inventory (INI, YAML or a directory): the same one `svdops provision` uses."),
        click.option("--limit", metavar="PATTERN",
                     help="Only inventory hosts/groups matching PATTERN (Ansible syntax)."),
        click.option("-i", "--identity", type=click.Path(path_type=Path, dir_okay=False),
                     help="SSH private key (default: your agent and ~/.ssh config)."),
        click.option("--forks", type=click.IntRange(1, 512), default=32, show_default=True,
                     help="Hosts probed at once."),
        click.option("--connect-timeout", type=click.FloatRange(0.1), default=10.0, show_default=True,
                     help="Seconds to wait for an SSH connection."),
        click.option("--command-timeout", type=click.FloatRange(0.1), default=30.0, show_default=True,
                     help="Seconds one remote command may run."),
        click.option("--accept-new-host-keys", is_flag=True,
                     help="Trust and record host keys not yet in known_hosts (changed keys are still refused)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _fleet_requested(params: dict[str, Any]) -> bool:
    return bool(params.get("hosts") or params.get("inventory"))


@click.command("facts")
@_FROM_DIR
@click.option("--bundle", type=click.Path(path_type=Path, file_okay=False),
              help="Also keep every raw command output in DIR (a support bundle, replayable with --from-dir).")
@click.option("--json", "as_json", is_flag=True, help="Print the snapshot as JSON (schema svdops.facts/1).")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), help="Write to FILE, not stdout.")
@_PYTHON
@_NO_NVML
@_fleet_options
@handles_errors
def facts(from_dir: Path | None, bundle: Path | None, as_json: bool, output: Path | None, python: str,
          no_nvml: bool, **fleet: Any) -> None:
    """Gather what a host has: GPUs and links, driver, CUDA, cuDNN, NCCL, Python env, CPU, RAM, disks.

    Read-only. A command that is missing or fails is reported as not available, with the reason.
    With --host or --inventory, gathers from every host over SSH in parallel.
    """
    if _fleet_requested(fleet):
        from svdops.cli.fleet_cmds import run_fleet_facts

        sys.exit(run_fleet_facts(as_json=as_json, output=output, bundle=bundle, python=python, from_dir=from_dir,
                                 **fleet))
    snapshot = gather(FactsSource(from_dir=from_dir, bundle_dir=bundle, python=python, use_nvml=not no_nvml))
    if as_json:
        write_output(snapshot.to_json() + "\n", output)
        return
    from svdops.cli.render import facts_table, file_console, make_console

    if output:
        buffer = io.StringIO()
        facts_table(snapshot, file_console(buffer, 120))
        write_output(buffer.getvalue(), output)
    else:
        facts_table(snapshot, make_console())
    if bundle:
        click.echo(f"raw outputs kept in {bundle} (replay: svdops facts --from-dir {bundle})", err=True)


@click.command("check")
@click.option("-p", "--profile", "profile", metavar="NAME|PATH",
              help="Profile to judge against (default: svd-host). See `svdops profiles`.")
@_FROM_DIR
@click.option("--facts", "facts_file", type=click.Path(path_type=Path, dir_okay=False),
              help="Judge a saved snapshot (`svdops facts --json -o FILE`).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "junit"]), default="table", show_default=True)
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), help="Write to FILE, not stdout.")
@click.option("-v", "--verbose", is_flag=True, help="Show passed checks too (table format).")
@click.option("--allow-unknown", is_flag=True,
              help="Do not fail (exit 1) on UNKNOWN: required checks that could not look (still reported).")
@click.option("--bundle", type=click.Path(path_type=Path, file_okay=False),
              help="Fleet runs: keep each host's raw outputs in DIR/HOST/ (replayable with --from-dir).")
@_PYTHON
@_NO_NVML
@_fleet_options
@handles_errors
def check(profile: str | None, from_dir: Path | None, facts_file: Path | None, fmt: str, output: Path | None,
          verbose: bool, allow_unknown: bool, bundle: Path | None, python: str, no_nvml: bool,
          **fleet: Any) -> None:
    """Check a host against a profile. Exit 0: nothing failed; 1: a check failed, or a required check could
    not look (UNKNOWN; --allow-unknown lets it pass); 2: bad input.

    \b
    svdops check                                   this host against svd-host
    svdops check -p h100-sxm-x8-nvlink --format junit -o check.xml
    svdops check --from-dir bundle/ -p seed-2023   a recorded host
    svdops check --inventory hosts.ini --limit gpu  every inventory host over SSH (exit 3: one unreachable)
    """
    from svdops.cli import render
    from svdops.judge import documents

    if _fleet_requested(fleet):
        from svdops.cli.fleet_cmds import run_fleet_check

        sys.exit(run_fleet_check(profile=profile, fmt=fmt, output=output, verbose=verbose, bundle=bundle,
                                 python=python, from_dir=from_dir, allow_unknown=allow_unknown, **fleet))
    if bundle:
        raise BadInputError("--bundle on check is for fleet runs; for this host use `svdops facts --bundle DIR`")

    judged_against = check_profile(profile)  # a bad profile is exit 2 before the host is probed
    source = FactsSource(from_dir=from_dir, facts_file=facts_file, python=python, use_nvml=not no_nvml)
    report = run_check(gather(source), judged_against, allow_unknown=allow_unknown)
    if fmt == "json":
        write_output(documents.json_text(documents.check_document(report)), output)
    elif fmt == "junit":
        write_output(documents.junit_text(documents.check_junit(report)), output)
    elif output:
        buffer = io.StringIO()
        render.findings_table(report, render.file_console(buffer, 140), verbose=verbose)
        write_output(buffer.getvalue(), output)
    else:
        render.findings_table(report, render.make_console(), verbose=verbose)
    if output and fmt != "table":
        s = report.summary
        click.echo(f"{s.get('fail', 0)} failed, {s.get('unknown', 0)} unknown, {s.get('warn', 0)} warnings; "
                   f"written to {output}", err=True)
    sys.exit(report.exit_code)


@click.group("profiles", invoke_without_command=True)
@click.pass_context
def profiles(ctx: click.Context) -> None:
    """List profiles (what a machine of a role must have), or show one."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_cmd)


@profiles.command("list")
@handles_errors
def list_cmd() -> None:
    """List the profiles svdops can find."""
    from rich.table import Table

    from svdops.judge.profiles import list_profiles
    from svdops.text import markup_safe

    table = Table(title="Profiles", title_justify="left")
    table.add_column("name", style="bold")
    table.add_column("description")
    table.add_column("file", style="dim")
    for prof in list_profiles():  # names, descriptions and paths are anyone's text: shown, never markup
        table.add_row(markup_safe(prof.name, one_line=True), markup_safe(prof.description),
                      markup_safe(prof.source, one_line=True))
    Console(emoji=False).print(table)


@profiles.command("show")
@click.argument("name")
@handles_errors
def show_cmd(name: str) -> None:
    """Print a profile's file (NAME or PATH)."""
    from svdops.judge.profiles import load_profile
    from svdops.text import printable

    prof = load_profile(name)
    click.echo(f"# {printable(str(prof.source), one_line=True)}")  # the file itself is YAML: no raw controls
    click.echo(Path(prof.source).read_text(encoding="utf-8"), nl=False)
