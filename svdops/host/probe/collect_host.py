"""OS, CPU, memory and storage facts assembled from the command answers."""

from __future__ import annotations

from svdops.host.facts import CpuFacts, MemoryFacts, OsFacts, StorageFacts
from svdops.host.probe import commands as cmd
from svdops.host.probe.outputs import Notes, Outputs, parse_or_note
from svdops.host.probe.storage import (
    MAX_MOUNTS,
    merge_mounts,
    parse_df,
    parse_lsblk_json,
    parse_mdstat,
    parse_proc_mounts,
)
from svdops.host.probe.system import parse_hostname, parse_lscpu_json, parse_meminfo, parse_os_release, parse_uname


def collect_os(out: Outputs, notes: Notes, fallback_hostname: str) -> OsFacts:
    release_text = out.text(cmd.OS_RELEASE)
    facts = parse_os_release(release_text) if release_text else OsFacts()
    if facts.id is None:
        notes.unavailable("os.id", out.result(cmd.OS_RELEASE))
    uname_text = out.text(cmd.UNAME)
    uname = parse_uname(uname_text or "")
    if uname.kernel_release is None:
        notes.unavailable("os.kernel_release", out.result(cmd.UNAME))
    hostname = parse_hostname(out.text(cmd.HOSTNAME) or "") or uname.hostname or fallback_hostname
    return OsFacts(
        id=facts.id,
        version_id=facts.version_id,
        pretty_name=facts.pretty_name,
        codename=facts.codename,
        kernel_release=uname.kernel_release,
        arch=uname.arch,
        hostname=hostname,
    )


def collect_cpu(out: Outputs, notes: Notes) -> CpuFacts:
    facts = parse_or_note(out, notes, cmd.LSCPU, parse_lscpu_json, "cpu", "`lscpu -J` did not print lscpu JSON")
    return facts or CpuFacts()


def collect_memory(out: Outputs, notes: Notes) -> MemoryFacts:
    facts = parse_or_note(out, notes, cmd.MEMINFO, parse_meminfo, "memory", "/proc/meminfo has no MemTotal line")
    return facts or MemoryFacts()


def collect_storage(out: Outputs, notes: Notes) -> StorageFacts:
    devices = parse_or_note(out, notes, cmd.LSBLK, parse_lsblk_json, "storage.block_devices",
                            "`lsblk -J` did not print lsblk JSON")

    # No /proc/mdstat means the md driver is not loaded: no arrays, which is normal, but say so.
    mdstat_text = out.text(cmd.MDSTAT)
    arrays = parse_mdstat(mdstat_text) if mdstat_text else ()
    if mdstat_text is None:
        notes.unavailable("storage.md_arrays", out.result(cmd.MDSTAT))

    df_text = out.text(cmd.DF)
    df = parse_df(df_text) if df_text else None
    if df is not None and len(df) > MAX_MOUNTS:
        notes.add("storage.mounts",
                  f"`df -PT` listed more than {MAX_MOUNTS} mounts; only the first {MAX_MOUNTS} are kept")
        df = df[:MAX_MOUNTS]
    mounts_text = out.text(cmd.PROC_MOUNTS)
    options = parse_proc_mounts(mounts_text) if mounts_text else {}
    if df is None:
        notes.unavailable("storage.mounts", out.result(cmd.DF))
    if not options:
        notes.add("storage.mounts.options", out.result(cmd.PROC_MOUNTS).reason)
    return StorageFacts(
        block_devices=devices or (),
        md_arrays=arrays,
        mounts=merge_mounts(df, options),
    )
