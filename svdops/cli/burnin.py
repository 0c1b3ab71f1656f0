"""`svdops burnin`: the opt-in hardware burn-in. Parse options, run it, list the findings, exit 0/1/2/130."""

from __future__ import annotations

import sys

import click

from svdops.bench.burnin import DEFAULT_DCGM_LEVEL, DEFAULT_DURATION_S, BurninRequest
from svdops.bench.multi.launcher import parse_gpus
from svdops.cli.errors import handles_errors
from svdops.errors import InterruptedRunError
from svdops.runs.store import DEFAULT_STORE
from svdops.text import printable

MARK = {"pass": "ok  ", "warn": "WARN", "fail": "FAIL", "skip": "skip"}
COLOUR = {"warn": "yellow", "fail": "red"}


@click.command("burnin")
@click.option(
    "--duration",
    type=float,
    default=DEFAULT_DURATION_S,
    show_default=True,
    help="Seconds of sustained matmul on every GPU at once (the memory test is capped by it too).",
)
@click.option(
    "--gpus",
    "gpus_text",
    metavar="all|0,1",
    default="all",
    show_default=True,
    help="Which GPUs, as nvidia-smi numbers them.",
)
@click.option(
    "--dcgm-level",
    type=click.IntRange(1, 4),
    default=DEFAULT_DCGM_LEVEL,
    show_default=True,
    help="DCGM diagnostic level when dcgmi is installed: 1 about a minute, 2 a few minutes, "
    "3 about 30 minutes, 4 one to two hours.",
)
@click.option("--no-dcgm", is_flag=True, help="Run the svdops burn even where DCGM is installed.")
@click.option("--no-nccl", is_flag=True, help="Leave out the NCCL all-reduce (it starts torchrun).")
@click.option(
    "--device",
    type=click.Choice(["cuda", "cpu"]),
    default="cuda",
    show_default=True,
    help="cpu: run the burn's mechanics on the CPU (a dry run; judges no GPU).",
)
@click.option(
    "--store",
    type=click.Path(file_okay=False),
    default=DEFAULT_STORE,
    show_default=True,
    help="The run store the results go to (`svdops report` reads it).",
)
@handles_errors
def burnin(
    duration: float, gpus_text: str, dcgm_level: int, no_dcgm: bool, no_nccl: bool, device: str, store: str
) -> None:
    """Stress the GPUs and judge their health. Opt-in: `svdops check` and `svdops bench` never run it.

    \b
    With DCGM (dcgmi on PATH): `dcgmi diag -r LEVEL -j`, one finding per DCGM test and GPU.
    Without it (or --no-dcgm): fp16 matmul on every GPU at once for --duration seconds with NVML
    clocks, power and temperature (throttling, clock collapse), a memory pattern test, host-to-GPU
    and GPU-to-GPU copy bandwidth against the link's rated figure, NCCL all-reduce bus bandwidth.

    Exit 0 healthy, 1 a finding failed, 2 bad input, 130 interrupted (finished tests are kept).
    """
    from svdops.bench.burnin.run import run_burnin

    request = BurninRequest(
        duration_s=duration,
        gpus=parse_gpus(gpus_text),
        store=store,
        device=device,
        dcgm_level=None if no_dcgm else dcgm_level,
        nccl=not no_nccl,
    )
    outcome = run_burnin(request, progress=lambda text: click.echo(f"… {printable(text)}", err=True))
    doc = outcome.doc
    for check in doc.checks:
        where = (
            "host"
            if check.gpu is None
            else f"GPU{check.gpu}" + (f"->GPU{check.peer}" if check.peer is not None else "")
        )
        status = check.status or "warn"
        line = f"{MARK.get(status, status):4}  {check.name or '?':<28} {where:<12} {printable(check.detail or '')}"
        click.secho(line, fg=COLOUR.get(status))
    counts = doc.counts()
    click.echo(
        f"\n{doc.mode or 'burn'}: {counts['pass']} passed, {counts['warn']} warned, {counts['fail']} failed, "
        f"{counts['skip']} skipped; results in {outcome.path}"
    )
    if outcome.interrupted:
        raise InterruptedRunError(
            f"interrupted: finished tests kept in {outcome.path}",
            hint=f"not run: {', '.join(doc.tests_not_run) or 'none'}",
        )
    if outcome.failed:
        sys.exit(1)
