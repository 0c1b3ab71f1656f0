"""Turn facts and findings into text for people (rich tables), and put any command's text where it was asked.

The JSON and JUnit files are built in the core (svdops.judge.documents); the CLI only writes them out.
Every string that came from a host, a snapshot or a profile goes through svdops.text.markup_safe before
rich sees it: a `[/]` in a GPU name is shown, and an escape sequence is written out, never sent.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from svdops.errors import BadInputError
from svdops.files import atomic_write_text
from svdops.findings import Status
from svdops.host.facts import HostFacts
from svdops.judge.check import CheckReport
from svdops.text import markup_safe

_STATUS_STYLE = {Status.PASS: "green", Status.WARN: "yellow", Status.FAIL: "bold red", Status.SKIP: "dim",
                 Status.UNKNOWN: "bold magenta"}
NA = "n/a"


def shown(value: object, unit: str = "") -> str:
    """A value as a table cell: n/a when the probe could not tell."""
    if value is None or value == "":
        return NA
    return f"{value}{unit}"


def _gib(mib: int | None) -> str:
    return NA if mib is None else f"{mib / 1024:.1f} GiB"


def write_output(text: str, output: Path | None) -> None:
    """To stdout, or to FILE through a temporary sibling so a reader never sees half a file."""
    if output is None:
        click.echo(text, nl=not text.endswith("\n"))
        return
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(output, text)
    except OSError as exc:
        raise BadInputError(f"cannot write output: {exc.strerror}", where=str(output)) from exc


def make_console() -> Console:
    """A console for stdout: a terminal's own width, 120 columns when piped (tables stay whole)."""
    probe = Console(emoji=False)
    return probe if probe.is_terminal else Console(width=120, emoji=False)


def file_console(buffer: IO[str], width: int) -> Console:
    """A console writing plain text (no colour, no emoji codes) into `buffer`, for `-o FILE`."""
    return Console(file=buffer, width=width, no_color=True, emoji=False)


def facts_table(facts: HostFacts, console: Console) -> None:
    """A one-screen summary of a snapshot; every gap says why it is a gap."""
    title = f"{markup_safe(facts.hostname, one_line=True)} ({markup_safe(facts.source, one_line=True)})"
    host = Table(title=title, show_header=False, title_justify="left")
    host.add_column(style="bold")
    host.add_column()
    os_text = facts.os.pretty_name or " ".join(filter(None, [facts.os.id, facts.os.version_id])) or None
    rows: list[tuple[str, str, str]] = [
        ("OS", shown(os_text), "os"),
        ("Kernel", shown(facts.os.kernel_release), "os.kernel_release"),
        ("CPU", shown(facts.cpu.model_name) + (f" ({facts.cpu.logical_cpus} CPUs)" if facts.cpu.logical_cpus else ""),
         "cpu"),
        ("RAM", _gib(facts.memory.total_mib), "memory"),
        ("Driver", _driver_text(facts), "driver"),
        ("CUDA toolkit", shown(facts.cuda.toolkit_version), "cuda.toolkit_version"),
        ("cuDNN / NCCL (system)", f"{shown(facts.cuda.cudnn_version)} / {shown(facts.cuda.nccl_version)}", "cuda"),
        ("Python", f"{shown(facts.python.python_version)} {facts.python.executable or ''}".strip(), "python"),
        ("torch", _torch_text(facts), "python.torch_version"),
        ("diffusers / transformers",
         f"{shown(facts.python.diffusers_version)} / {shown(facts.python.transformers_version)}", "python"),
        ("conda", shown(facts.python.conda.executable) + (
            f" ({len(facts.python.conda.envs)} envs)" if facts.python.conda.envs else ""), "python.conda"),
        ("Secure Boot", _bool(facts.driver.secure_boot_enabled, "enabled", "disabled"), "driver.secure_boot_enabled"),
        ("nouveau", _bool(facts.driver.nouveau_loaded, "loaded", "not loaded"), "driver.nouveau_loaded"),
    ]
    for label, value, subject in rows:
        note = facts.note_for(subject) if NA in value else None
        host.add_row(label, markup_safe(value) + (f"  [dim]({markup_safe(note)})[/dim]" if note else ""))
    console.print(host)

    if facts.gpus:
        gpus = Table(title="GPUs", title_justify="left")
        gpus.add_column("#", min_width=1, no_wrap=True)
        gpus.add_column("name", max_width=48, overflow="fold")  # a long (or lying) name must not squeeze the rest
        for col in ("memory", "cc", "PCIe", "power cap", "persist", "ECC", "MIG"):
            gpus.add_column(col, no_wrap=True)
        for gpu in facts.gpus:
            pcie = (f"gen{gpu.pcie_gen_current} x{gpu.pcie_width_current}"
                    if gpu.pcie_gen_current and gpu.pcie_width_current else NA)
            gpus.add_row(
                str(gpu.index), markup_safe(gpu.name, one_line=True), _gib(gpu.memory_total_mib),
                markup_safe(shown(gpu.compute_capability)), pcie,
                shown(None if gpu.power_limit_w is None else f"{gpu.power_limit_w:.0f}", " W"),
                _bool(gpu.persistence_mode, "on", "off"), _bool(gpu.ecc_enabled, "on", "off"),
                _bool(gpu.mig_enabled, "on", "off"),
            )
        console.print(gpus)
        if len(facts.gpus) > 1 and facts.topology.links:
            console.print(topology_table(facts))
    else:
        console.print(f"GPUs: none ({markup_safe(facts.note_for('gpus') or 'no NVIDIA GPU found')})")

    disks = [d for d in facts.storage.block_devices if d.type == "disk" and d.size_bytes > 0]
    if disks:
        table = Table(title="Disks", title_justify="left")
        for col in ("name", "size", "kind", "model", "mounted"):
            table.add_column(col)
        for disk in disks:
            kind = "NVMe" if disk.is_nvme else ("HDD" if disk.rotational else "SSD")
            table.add_row(markup_safe(disk.name), _size(disk.size_bytes), kind, markup_safe(shown(disk.model)),
                          markup_safe(shown(disk.mountpoint)))
        console.print(table)
    for md in facts.storage.md_arrays:
        state = "DEGRADED" if md.degraded else md.state
        known = md.devices_total is not None and md.devices_up is not None
        counts = f" [{md.devices_total}/{md.devices_up}]" if known else ""
        # mdstat still lists a disk being rebuilt among the working set: [n/m]'s m says how many are in sync
        working = min(len(md.members), md.devices_up) if md.devices_up is not None else len(md.members)
        rebuilding = f", {len(md.members) - working} rebuilding" if working < len(md.members) else ""
        failed = f" ({', '.join(md.failed_members)})" if md.failed_members else ""
        console.print(markup_safe(f"md array {md.name}: {md.level or '?'}{counts}, {working} working{rebuilding}, "
                                  f"{len(md.spare_members)} spare, {len(md.failed_members)} failed{failed}, {state}"))


def _size(num_bytes: int) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if num_bytes >= scale:
            return f"{num_bytes / scale:.1f} {unit}"
    return f"{num_bytes} B"


def topology_table(facts: HostFacts) -> Table:
    n = facts.topology.gpu_count
    table = Table(title="GPU links (nvidia-smi topo -m)", title_justify="left")
    table.add_column("")
    for b in range(n):
        table.add_column(f"GPU{b}")
    for a in range(n):
        cells = []
        for b in range(n):
            link = facts.topology.link(a, b)
            cells.append("X" if a == b else (markup_safe(link.kind, one_line=True) if link else "?"))
        table.add_row(f"GPU{a}", *cells)
    return table


def _bool(value: bool | None, yes: str, no: str) -> str:
    return NA if value is None else (yes if value else no)


def _driver_text(facts: HostFacts) -> str:
    d = facts.driver
    if d.userspace_version is None and d.kernel_module_version is None:
        return "mismatch (reboot needed)" if d.library_mismatch else NA
    text = str(d.userspace_version or d.kernel_module_version)
    if d.kernel_module_flavor:
        text += f" ({d.kernel_module_flavor} module)"
    if d.cuda_driver_api:
        text += f", CUDA {d.cuda_driver_api} API"
    if d.needs_reboot:
        text += f" — loaded module {shown(d.kernel_module_version)}: reboot needed"
    return text


def _torch_text(facts: HostFacts) -> str:
    p = facts.python
    if p.torch_version is None:
        return NA
    variant = f"CUDA {p.torch_cuda}" if p.torch_cuda else "CPU-only"
    extra = []
    if p.torch_cudnn:
        extra.append(f"cuDNN {p.torch_cudnn}")
    if p.torch_nccl:
        extra.append(f"NCCL {p.torch_nccl}")
    return f"{p.torch_version} ({variant}{', ' if extra else ''}{', '.join(extra)})"


def findings_table(report: CheckReport, console: Console, *, verbose: bool = False) -> None:
    title = (f"svdops check: {markup_safe(report.facts.hostname, one_line=True)} "
             f"against profile '{markup_safe(report.profile.name, one_line=True)}'")
    table = Table(title=title, title_justify="left", show_lines=False)
    table.add_column("status")
    table.add_column("check")
    table.add_column("expected")
    table.add_column("actual")
    for f in report.findings:
        if f.status is Status.PASS and not verbose:
            continue
        status = Text(f.status.value.upper(), style=_STATUS_STYLE[f.status])
        table.add_row(status, f"{markup_safe(f.title)}\n[dim]{markup_safe(f.key)}[/dim]", markup_safe(f.expected),
                      markup_safe(f.actual))
    if table.row_count:
        console.print(table)
    hinted = [f for f in report.findings if f.hint and f.status in (Status.FAIL, Status.WARN)]
    if hinted:
        console.print("[bold]How to fix[/bold]")
        for f in hinted:
            console.print(f"  [{_STATUS_STYLE[f.status]}]{markup_safe(f.key)}[/]: {markup_safe(f.hint)}",
                          soft_wrap=True, highlight=False)
    # a recorded folder svdops would not read all of (a symlink out of it, a FIFO, a file over the cap)
    for note in report.facts.notes:
        if note.subject.startswith("recorded."):
            console.print(f"[yellow]note[/yellow]: {markup_safe(note.reason)}", soft_wrap=True, highlight=False)
    s = report.summary
    console.print(
        f"{s.get('pass', 0)} passed, {s.get('warn', 0)} warnings, {s.get('fail', 0)} failed, "
        f"{s.get('unknown', 0)} unknown (could not look{', allowed' if report.allow_unknown else ''}), "
        f"{s.get('skip', 0)} skipped" + ("" if verbose else "  (passed checks hidden; -v shows them)")
    )
