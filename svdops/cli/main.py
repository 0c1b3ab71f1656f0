"""The `svdops` command group. Subcommands load lazily so `svdops check` never pays for torch."""

from __future__ import annotations

import atexit
import importlib
import os
import sys
from typing import Any, NoReturn

import click

from svdops import __version__
from svdops.extras import COMMAND_EXTRAS, install_hint

# name -> "module:attribute"; the module is imported only when that command runs (or for --help)
COMMANDS = {
    "facts": "svdops.cli.check_cmds:facts",
    "check": "svdops.cli.check_cmds:check",
    "profiles": "svdops.cli.check_cmds:profiles",
    "bench": "svdops.cli.bench:bench",
    "burnin": "svdops.cli.burnin:burnin",
    "provision": "svdops.cli.provision:provision",
    "report": "svdops.cli.report:report",
    "plan": "svdops.cli.plan:plan",
    "paths": "svdops.cli.paths:paths_cmd",
    "knowledge": "svdops.cli.knowledge:knowledge",
    "completion": "svdops.cli.main:completion",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            # a command whose optional dependencies are missing still lists, and says what to install
            return _missing_command(cmd_name, exc)
        command: click.Command = getattr(module, attr)
        return command


def _missing_command(name: str, exc: ImportError) -> click.Command:
    @click.command(name, help=f"(unavailable: {exc})", context_settings={"ignore_unknown_options": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def unavailable(args: tuple[str, ...]) -> None:
        click.secho(f"error: `svdops {name}` cannot load: {exc}", fg="red", err=True)
        extra = COMMAND_EXTRAS.get(name)
        hint = install_hint(extra) if extra else "reinstall svdops (the base install runs this command)"
        click.echo(f"hint: {hint}", err=True)
        sys.exit(2)

    return unavailable


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    # imported here: the knowledge is read only when someone asks for it
    from svdops.judge.knowledge import knowledge_as_of

    click.echo(f"svdops {__version__} (knowledge as of {knowledge_as_of()}; newer CUDA, drivers or libraries "
               "are reported, not judged: upgrade svdops to refresh)")
    ctx.exit()


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("-V", "--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Show the version, and the date of the knowledge it judges by, and exit.")
def cli() -> None:
    """Check, provision and benchmark Ubuntu GPU hosts for Stable Video Diffusion.

    \b
    svdops facts                what this host has (GPUs, driver, CUDA, Python env, disks)
    svdops check                judge it against a profile (exit 1 when a check fails)
    svdops profiles             list and show profiles
    svdops provision            bring hosts to a profile with Ansible (check mode first)
    svdops bench                run the reference SVD pipeline and store the results
    svdops burnin               opt-in GPU burn-in: DCGM diag, or matmul/memory/bandwidth/NCCL
    svdops report RUNS...       one self-contained HTML file comparing runs and hosts
    svdops plan                 predict SVD throughput, VRAM, energy and cost on GPUs you do not have
    svdops paths                where profiles, playbooks and shipped data are looked up, and which are used
    svdops completion SHELL     print a shell completion script
    """


@click.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the completion script for SHELL.

    \b
    bash:  eval "$(svdops completion bash)"       (or save it under ~/.local/share/bash-completion/completions/svdops)
    zsh:   eval "$(svdops completion zsh)"
    fish:  svdops completion fish > ~/.config/fish/completions/svdops.fish
    """
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    if cls is None:  # pragma: no cover - click ships all three
        raise click.UsageError(f"no completion support for {shell}")
    comp = cls(cli, {}, "svdops", "_SVDOPS_COMPLETE")
    click.echo(comp.source())


def main(argv: list[str] | None = None) -> Any:
    """The `svdops` program. Run as a process (no `argv`: it reads sys.argv) it ends that process itself;
    to call svdops from Python, invoke `cli` (click's testing runner, or cli.main(standalone_mode=False))."""
    try:
        return cli.main(args=argv, prog_name="svdops")
    except SystemExit as done:
        if argv is None:
            end_process(done.code)
        raise


def end_process(code: object) -> NoReturn:
    """Exit with `code` as SystemExit would, without the interpreter's finalization.

    Everything svdops writes is written and closed by now (files atomically; stdout and stderr are
    flushed here) and the atexit handlers run first, so what is skipped is only tearing down the heap
    and ~1,000 modules while paramiko's transport threads wind down: 0.08-0.16 s measured at the end of a
    20-host check on the 2-vCPU benchmark machine, a tenth of the whole run.
    """
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # SystemExit("message"): printed, status 1
        print(code, file=sys.stderr)
        status = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`svdops ... | head`): Python's own status for that
            status = status or 120
    os._exit(status & 0xFF)


if __name__ == "__main__":  # pragma: no cover
    main()
