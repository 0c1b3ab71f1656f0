"""gather_facts(shell): run every probe command once, in parallel, and build one HostFacts.

Commands are all read-only and independent, so they run together on a small thread pool: on a
local host the wall time is that of the slowest (nvidia-smi), not the sum. Fallback commands
(nvcc outside PATH, /sbin/ldconfig) run alongside rather than after, for the same reason; a fleet
host's one remote script (svdops.host.batch) runs them only when their primary answered nothing
usable (commands.FALLBACKS), which the collectors read the same way (Outputs.first).
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime

from svdops import nvml
from svdops.host.facts import HostFacts
from svdops.host.probe import commands as cmd
from svdops.host.probe.collect_gpu import collect_driver, collect_gpus, collect_kernel_log, collect_nvlinks, merge_nvml
from svdops.host.probe.collect_host import collect_cpu, collect_memory, collect_os, collect_storage
from svdops.host.probe.collect_software import collect_collect_env, collect_cuda, collect_dpkg, collect_python
from svdops.host.probe.outputs import Notes, Outputs
from svdops.host.shell import Command, CommandResult, LocalShell, RecordedShell, Shell

MAX_WORKERS = 12


def commands_for(shell: Shell, python: str = "python3") -> tuple[Command, ...]:
    """The commands a gather runs on `shell`, python-env ones under the target interpreter."""
    selected = cmd.ALL + (cmd.RECORDED_ONLY if isinstance(shell, RecordedShell) else ())
    return tuple(cmd.with_python(command, python) for command in selected)


def run_commands(shell: Shell, commands: Iterable[Command], *, parallel: bool = True) -> dict[str, CommandResult]:
    """Every command's result. `parallel=False` asks them one after another: for a shell that already
    holds every answer (a fleet host's batch script ran), where a pool of threads would only cost CPU."""
    commands = list(commands)
    if not parallel:
        return {result.key: result for result in (_run_one(shell, command) for command in commands)}
    with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, max(1, len(commands)))) as pool:
        results = list(pool.map(lambda command: _run_one(shell, command), commands))
    return {result.key: result for result in results}


def _run_one(shell: Shell, command: Command) -> CommandResult:
    try:
        return shell.run(command)
    except Exception as exc:  # a Shell must not raise, but one bad command must not lose the rest
        return CommandResult(command.key, command.argv, 1, "", f"{type(exc).__name__}: {exc}")


def gather_facts(
    shell: Shell, *, python: str = "python3", use_nvml: bool = False, source: str | None = None,
    parallel: bool = True,
) -> HostFacts:
    """Everything svdops knows about the host behind `shell`. Never raises for a missing or
    failing command: the value is None and `notes` says why. `parallel`: see run_commands."""
    results = run_commands(shell, commands_for(shell, python), parallel=parallel)
    out = Outputs(results)
    notes = Notes()
    for key, result in results.items():  # a refused or cut recorded file is said even where no probe asks why
        if result.refused or result.cut:
            notes.add(f"recorded.{key}", result.reason if result.refused else result.cut)

    os_facts = collect_os(out, notes, shell.name)
    report, topology = collect_gpus(out, notes)
    dpkg = collect_dpkg(out)
    driver = collect_driver(out, notes, report, dpkg)
    gpus = collect_nvlinks(out, notes, report.gpus)
    if use_nvml:
        problems: list[str] = []
        devices = nvml.read_devices(errors=problems)
        if devices is not None:
            gpus = merge_nvml(gpus, devices)
            for device in devices:
                for key, message in device.get("errors", {}).items():
                    notes.add(f"gpus.{device['index']}.nvml.{key}", message)
        else:
            notes.add("gpus.nvml", "; ".join(problems) or "NVML is not available")
    env = collect_collect_env(out)

    return HostFacts(
        hostname=os_facts.hostname or shell.name,
        collected_at=datetime.now(UTC).isoformat(timespec="seconds"),
        source=source or _describe(shell),
        os=os_facts,
        cpu=collect_cpu(out, notes),
        memory=collect_memory(out, notes),
        driver=driver,
        gpus=gpus,
        topology=replace(topology, gpu_count=max(topology.gpu_count, len(gpus))) if gpus else topology,
        cuda=collect_cuda(out, notes, dpkg, env),
        python=collect_python(out, notes, python, env),
        storage=collect_storage(out, notes),
        kernel_log=collect_kernel_log(out, notes),
        notes=notes.as_tuple(),
    )


def _describe(shell: Shell) -> str:
    if isinstance(shell, RecordedShell):
        return f"recorded:{shell.folder}"
    if isinstance(shell, LocalShell):
        return "local"
    return shell.name
