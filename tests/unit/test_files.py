"""svdops.files: the one atomic writer. Whole files or none, and never a device replaced."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from svdops.files import atomic_path, atomic_write_json, atomic_write_text


def test_a_regular_file_is_replaced_whole_and_no_temporary_is_left(tmp_path: Path) -> None:
    target = tmp_path / "check.json"
    target.write_text("old")
    atomic_write_json(target, {"nan": float("nan"), "ok": 1})
    assert target.read_text() == '{\n  "nan": null,\n  "ok": 1\n}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["check.json"]


def test_a_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")
def test_a_character_device_is_written_into_never_replaced(tmp_path: Path) -> None:
    # `svdops check -o /dev/null` as root once renamed a regular file over /dev/null; a clone of it here
    null = tmp_path / "null"
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    atomic_write_text(null, "x" * 10_000)
    assert stat.S_ISCHR(null.stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null"]


def test_a_fifo_is_written_into_and_stays_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    atomic_write_text(fifo, "through the pipe\n")
    reader.join(timeout=10)
    assert got == [b"through the pipe\n"]
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_a_symlink_to_a_device_is_followed_to_the_device(tmp_path: Path) -> None:
    link = tmp_path / "out"
    link.symlink_to("/dev/null")
    atomic_write_text(link, "discarded")
    assert link.is_symlink() and stat.S_ISCHR(Path("/dev/null").stat().st_mode)
