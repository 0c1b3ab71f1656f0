"""Parsers on recordings far larger than any real host's: bounded, and the cut is said."""

from __future__ import annotations

import shutil
from pathlib import Path

from svdops.host.probe.driver import driver_unreachable, has_library_mismatch, nvml_library_version
from svdops.host.probe.gather import gather_facts
from svdops.host.probe.storage import MAX_MOUNTS, parse_df, parse_proc_mounts
from svdops.host.shell import RecordedShell
from tests.support.paths import recorded_host

HEADER = "Filesystem     Type 1024-blocks    Used Available Capacity Mounted on\n"
ROW = "/dev/nvme0n1p{0} ext4 1919746268 1048576 1820936192 1% /mnt/data{0}\n"


def test_df_keeps_one_mount_past_the_cap_and_no_more() -> None:
    rows = "".join(ROW.format(i) for i in range(3 * MAX_MOUNTS))
    mounts = parse_df(HEADER + rows)
    assert mounts is not None and len(mounts) == MAX_MOUNTS + 1
    assert mounts[0].mountpoint == "/mnt/data0"
    small = parse_df(HEADER + "".join(ROW.format(i) for i in range(3)))
    assert small is not None and [m.mountpoint for m in small] == ["/mnt/data0", "/mnt/data1", "/mnt/data2"]


def test_proc_mounts_reads_a_bounded_number_of_lines() -> None:
    text = "".join(f"/dev/sd{i} /mnt/{i} ext4 rw 0 0\n" for i in range(5 * MAX_MOUNTS))
    assert len(parse_proc_mounts(text)) == 4 * MAX_MOUNTS


def test_a_recorded_df_with_too_many_mounts_is_cut_with_a_note(tmp_path: Path) -> None:
    folder = tmp_path / "host"
    shutil.copytree(recorded_host("h100-sxm-ubuntu2404"), folder)
    (folder / "df.txt").write_text(HEADER + "".join(ROW.format(i) for i in range(MAX_MOUNTS + 500)))
    facts = gather_facts(RecordedShell(folder))
    assert len(facts.storage.mounts) == MAX_MOUNTS
    assert facts.note_for("storage.mounts") == (
        f"`df -PT` listed more than {MAX_MOUNTS} mounts; only the first {MAX_MOUNTS} are kept"
    )


def test_nvidia_smi_messages_are_looked_for_where_nvidia_smi_prints_them() -> None:
    message = "Failed to initialize NVML: Driver/library version mismatch\nNVML library version: 580.95\n"
    assert has_library_mismatch(message) and nvml_library_version(message) == "580.95"
    assert driver_unreachable("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.")
    # 64 MiB of junk is not searched end to end (case-blind, that took 1.8 s): only its first 64 KiB
    junk = "\0" * 70_000 + message + "No devices were found"
    assert not has_library_mismatch(junk) and nvml_library_version(junk) is None and not driver_unreachable(junk)
