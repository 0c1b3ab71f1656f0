"""LocalShell against real programs; RecordedShell and RecordingShell on real folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from svdops.errors import FactsError
from svdops.host.shell import Command, LocalShell, RecordedShell, RecordingShell


def test_local_ok() -> None:
    result = LocalShell().run(Command("echo.txt", ("echo", "hello; rm -rf /")))
    assert result.ok
    assert result.stdout == "hello; rm -rf /\n"  # argv, never a shell: metacharacters stay text


def test_local_missing_program() -> None:
    result = LocalShell().run(Command("x.txt", ("svdops-no-such-program",)))
    assert result.missing and not result.ok
    assert "not found" in result.reason


def test_local_failure_reason_has_first_stderr_line() -> None:
    result = LocalShell().run(Command("x.txt", ("cat", "/nonexistent/file")))
    assert result.rc == 1
    assert "exited 1" in result.reason and "No such file" in result.reason


def test_local_timeout() -> None:
    result = LocalShell().run(Command("x.txt", ("sleep", "5"), timeout_s=0.2))
    assert result.timed_out and not result.ok
    assert "timed out" in result.reason
    assert result.duration_s < 3


def test_recorded_layout(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("out")
    (tmp_path / "b.txt").write_text("")
    (tmp_path / "b.txt.rc").write_text("1\n")
    (tmp_path / "b.txt.err").write_text("cat: /proc/mdstat: No such file or directory\n")
    (tmp_path / "c.txt.rc").write_text("127\n")
    (tmp_path / "d.txt").write_text("")
    (tmp_path / "d.txt.rc").write_text("not-a-number")
    shell = RecordedShell(tmp_path)
    a = shell.run(Command("a.txt", ("x",)))
    assert a.ok and a.stdout == "out"
    b = shell.run(Command("b.txt", ("cat", "/proc/mdstat")))
    assert b.rc == 1 and "No such file" in b.reason
    c = shell.run(Command("c.txt", ("nvidia-smi",)))
    assert c.missing
    d = shell.run(Command("d.txt", ("x",)))
    assert not d.ok and "unreadable exit status" in d.stderr
    absent = shell.run(Command("absent.txt", ("nvcc", "--version")))
    assert absent.rc is None and "not recorded" in absent.reason


def test_recorded_folder_must_exist(tmp_path: Path) -> None:
    with pytest.raises(FactsError, match="does not exist"):
        RecordedShell(tmp_path / "missing")


def test_recording_then_replay_is_identical(tmp_path: Path) -> None:
    commands = [
        Command("echo.txt", ("echo", "hi")),
        Command("fail.txt", ("cat", "/nonexistent")),
        Command("missing.txt", ("svdops-no-such-program",)),
    ]
    recorder = RecordingShell(LocalShell("box"), tmp_path)
    live = [recorder.run(c) for c in commands]
    # pinned first: a replay equal to a live run that saw nothing would prove nothing
    assert [(r.ok, r.stdout, r.rc, r.missing) for r in live[:2]] == [(True, "hi\n", 0, False), (False, "", 1, False)]
    assert live[2].missing
    replay = RecordedShell(tmp_path)
    assert replay.name == "box"
    for cmd, before in zip(commands, live, strict=True):
        after = replay.run(cmd)
        assert (after.ok, after.stdout, after.missing) == (before.ok, before.stdout, before.missing)
        if before.rc not in (None, 0):
            assert after.rc == before.rc and after.stderr == before.stderr
