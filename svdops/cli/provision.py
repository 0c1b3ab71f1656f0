"""`svdops provision`: validate the requested stack, run the playbooks, print a per-host recap."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from svdops.cli.errors import handles_errors
from svdops.errors import BadInputError
from svdops.findings import Status
from svdops.versions import Version

_STYLE = {"changed": "yellow", "failed": "red", "unreachable": "red", "ok": "green", "message": "cyan"}


def _split(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(v.strip() for value in values for v in value.split(",") if v.strip())


@click.command("provision")
@click.option("-p", "--profile", "profile_name", metavar="NAME|PATH", default="svd-host", show_default=True,
              help="Profile to provision to (see `svdops profiles`).")
@click.option("--inventory", type=click.Path(path_type=Path, exists=True),
              help="Ansible inventory (INI, YAML or a directory); per-host disk allowlists go here as host vars.")
@click.option("--host", "hosts", multiple=True, metavar="[USER@]HOST[:PORT]", help="A host over SSH (repeatable).")
@click.option("-i", "--identity", type=click.Path(path_type=Path, dir_okay=False),
              help="SSH private key for --host targets.")
@click.option("--check", is_flag=True, help="Show what would change (check + diff mode); change nothing.")
@click.option("--tags", multiple=True, metavar="ROLE[,ROLE]", help="Run only these roles (e.g. storage).")
@click.option("--skip-tags", multiple=True, metavar="ROLE[,ROLE]", help="Skip these roles.")
@click.option("--limit", metavar="PATTERN", help="Only inventory hosts/groups matching PATTERN (Ansible syntax).")
@click.option("--allow-reboot", is_flag=True,
              help="Reboot hosts whose loaded driver differs from the installed one (never the local machine).")
@click.option("--wipe", multiple=True, metavar="HOST=DISK",
              help="Let the storage role destroy what DISK holds on HOST (partitions, signatures). DISK is a "
                   "/dev/disk/by-id/ path written exactly as in HOST's allowlist; HOST= may be left out when the "
                   "run has one host. Repeatable. Exit 2 before anything runs when it names nothing.")
@click.option("-e", "--extra-vars", "extra", multiple=True, metavar="KEY=VALUE|@FILE",
              help="Playbook variables (mirrors, disk allowlists...). See docs/provision.md.")
@click.option("--driver-branch", type=int, metavar="N",
              help="NVIDIA driver branch (e.g. 580); default: from the profile.")
@click.option("--driver-flavor", type=click.Choice(["open", "proprietary"]),
              help="Kernel modules; default: from the profile.")
@click.option("--cuda", metavar="X.Y",
              help="CUDA toolkit; default: cuda.toolkit of the profile, else the torch wheel's CUDA.")
@click.option("--gpu", metavar="NAME", help="GPU the hosts have (e.g. 'H100 SXM'), when the profile names none.")
@click.option("--forks", type=click.IntRange(1, 512), default=16, show_default=True, help="Hosts worked on at once.")
@click.option("--runs-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Where run folders go (default: ./svdops-runs/provision or $SVDOPS_RUNS_DIR).")
@click.option("-v", "--verbose", is_flag=True, help="Show every task and host result, not only changes and failures.")
@handles_errors
def provision(profile_name: str, inventory: Path | None, hosts: tuple[str, ...], identity: Path | None, check: bool,
              tags: tuple[str, ...], skip_tags: tuple[str, ...], limit: str | None, allow_reboot: bool,
              wipe: tuple[str, ...], extra: tuple[str, ...], driver_branch: int | None, driver_flavor: str | None,
              cuda: str | None, gpu: str | None, forks: int, runs_dir: Path | None, verbose: bool) -> None:
    """Bring hosts to a profile with Ansible (playbooks/site.yml via ansible-runner).

    The requested driver/CUDA/cuDNN/torch/GPU combination is validated first (exit 2 when it cannot
    work). Exit 0: every host ok; 1: a task failed; 3: a host was unreachable.

    \b
    svdops provision -p h100-sxm-x8-nvlink --inventory hosts.ini --check
    svdops provision -p h100-sxm-x8-nvlink --inventory hosts.ini --limit gpu01 --allow-reboot
    svdops provision --inventory hosts.ini --tags storage --wipe gpu01=/dev/disk/by-id/nvme-SAMSUNG_X
    """
    from svdops.judge.profiles import load_profile
    from svdops.provision import plan as provision_plan
    from svdops.provision import run as provision_run

    options = provision_plan.PlanOptions(driver_branch=driver_branch, driver_flavor=driver_flavor,
                               cuda=_cuda(cuda), gpu=gpu)
    request = provision_run.ProvisionRequest(
        profile=load_profile(profile_name), inventory=inventory, hosts=hosts, identity=identity, check=check,
        tags=_split(tags), skip_tags=_split(skip_tags), limit=limit, allow_reboot=allow_reboot, wipe=wipe,
        extra_vars=provision_run.parse_extra_vars(extra), options=options, forks=forks, runs_dir=runs_dir,
    )
    plan = provision_plan.plan_for(request.profile, options)
    _print_plan(provision_plan.plan_summary(plan), check)
    for finding in provision_plan.validate_plan(plan):
        if finding.status is Status.WARN:
            click.secho(f"warn  {finding.id}: {finding.title}: {finding.actual}", fg="yellow")
            if finding.hint:
                click.echo(f"      hint: {finding.hint}")

    def progress(event: provision_run.ProgressEvent) -> None:
        if event.kind == "play":
            click.secho(f"PLAY {event.task}", bold=True)
        elif event.kind == "task":
            if verbose:
                click.secho(f"  TASK {event.task}", dim=True)
        elif event.kind in ("failed", "unreachable"):
            click.secho(f"  {event.kind:<11} {event.host}: {event.task}: {event.message}", fg=_STYLE[event.kind])
        elif event.kind == "changed" or (verbose and event.kind in ("ok", "skipped")):
            click.secho(f"  {event.kind:<11} {event.host}: {event.task}", fg=_STYLE.get(event.kind))
        elif event.kind == "message":
            click.secho(f"  {'note':<11} {event.host}: {event.message}", fg=_STYLE["message"])

    result = provision_run.run_provision(request, progress)
    _print_recap(result)
    sys.exit(result.exit_code)


def _cuda(text: str | None) -> Version | None:
    if text is None:
        return None
    try:
        return Version.parse(text).truncate(2)
    except ValueError:
        raise BadInputError("expected a CUDA version such as 12.8", where=f"--cuda {text}") from None


def _print_plan(plan: dict[str, object], check: bool) -> None:
    mode = "check mode: nothing will change" if check else "changes will be made"
    click.secho(f"plan ({mode})", bold=True)
    driver = f"{plan['driver_branch']} ({plan['driver_flavor']} modules)"
    if plan.get("driver_version"):
        driver += f", pinned {plan['driver_version']}"
    rows = [("driver", driver), ("CUDA toolkit", plan["cuda"]), ("cuDNN", plan["cudnn"] or "not installed"),
            ("NCCL", plan["nccl"] or "not installed"), ("Python", plan["python"]),
            ("torch", f"{plan['torch']} ({plan['torch_variant']} wheel)"),
            ("GPU", f"{plan['gpu'] or 'not named'}"
                    + (f" (compute capability {plan['compute_capability']})" if plan["compute_capability"] else ""))]
    for label, value in rows:
        click.echo(f"  {label:<13} {value}")


def _print_recap(result: object) -> None:
    from svdops.provision.run import ProvisionResult

    assert isinstance(result, ProvisionResult)
    click.secho("RECAP", bold=True)
    width = max((len(h) for h in result.recap), default=4)
    for host, r in result.recap.items():
        color = "red" if r.failed or r.unreachable else ("yellow" if r.changed else "green")
        click.secho(f"  {host:<{width}}  ok={r.ok:<4} changed={r.changed:<4} failed={r.failed:<4} "
                    f"unreachable={r.unreachable:<4} skipped={r.skipped}", fg=color)
    for host, needed in sorted(result.reboot_required.items()):
        if needed:
            click.secho(f"  {host}: reboot required (the loaded NVIDIA driver is not the installed one); "
                        f"rerun with --allow-reboot", fg="yellow")
    if result.check and result.plan:
        click.secho("PLAN (per host, from the roles)", bold=True)
        for host, roles in sorted(result.plan.items()):
            for role, details in roles.items():
                install = details.get("install") if isinstance(details, dict) else None
                hold = details.get("hold") if isinstance(details, dict) else None
                pip = details.get("pip") if isinstance(details, dict) else None
                text = " ".join(install or pip or []) or "nothing to install"
                if hold:
                    text += f"; hold {' '.join(hold)}"
                click.echo(f"  {host} {role}: {text}")
    click.echo(f"run folder: {result.run_dir} (ansible-runner artifacts in runner/artifacts/run)")
