"""LocalShell against real programs; RecordedShell and RecordingShell on real folders."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from svdops.errors import FactsError
from svdops.host.probe.gather import gather_facts
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


def test_a_bundle_folder_with_a_planted_link_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "echo.txt").symlink_to(victim)
    with pytest.raises(FactsError, match="link or a special file") as caught:
        RecordingShell(LocalShell("box"), bundle)
    assert caught.value.where == str(bundle / "echo.txt")
    assert victim.read_text() == "keep me\n" and not (bundle / "hostname.txt").exists()


def test_a_link_planted_after_the_bundle_opened_is_not_written_through(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    bundle = tmp_path / "bundle"
    recorder = RecordingShell(LocalShell("box"), bundle)
    (bundle / "echo.txt").symlink_to(victim)  # the race: between the folder's scan and the write
    os.mkfifo(bundle / "echo.txt.err")
    with pytest.raises(FactsError, match="cannot write the recording"):
        recorder.run(Command("echo.txt", ("echo", "overwritten")))
    assert victim.read_text() == "keep me\n"


# -- a recorded folder may come from anyone: only regular files inside it are read, each capped


@pytest.fixture
def deadline() -> Iterator[None]:
    """Fail (instead of hanging the suite) if a read blocks: a FIFO read on today's code never returns."""

    def expired(_signum: int, _frame: object) -> None:
        raise TimeoutError("a recorded read blocked for 10 s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(10)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_recorded_symlink_to_dev_zero_is_refused(tmp_path: Path, deadline: None) -> None:
    (tmp_path / "df.txt").symlink_to("/dev/zero")
    result = RecordedShell(tmp_path).run(Command("df.txt", ("df", "-PT")))
    assert not result.ok and result.stdout == ""
    assert result.reason == "recorded output of `df -PT` refused: df.txt is a symlink that leaves the folder"


def test_recorded_symlink_out_of_the_folder_is_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$not-a-real-hash-but-a-secret:19000:0:99999:7:::\n")
    folder = tmp_path / "host"
    folder.mkdir()
    (folder / "torch-env.txt").write_text("torch 2.5\n")
    (folder / "torch-env.txt.err").symlink_to(secret)
    (folder / "torch-env.txt.rc").write_text("1\n")
    result = RecordedShell(folder).run(Command("torch-env.txt", ("python3", "-c", "...")))
    assert not result.ok and result.refused == "torch-env.txt.err is a symlink that leaves the folder"
    assert "not-a-real-hash" not in result.stdout + result.stderr + result.reason
    # the same through `..` inside the folder: resolved before it is judged
    (folder / "sub").mkdir()
    (folder / "lscpu.json").symlink_to(Path("sub") / ".." / ".." / "shadow")
    assert RecordedShell(folder).run(Command("lscpu.json", ("lscpu", "-J"))).refused.endswith("leaves the folder")


def test_recorded_hostname_symlink_out_of_the_folder_is_not_the_name(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("root:secret-line\n")
    folder = tmp_path / "host-a"
    folder.mkdir()
    (folder / "hostname.txt").symlink_to(tmp_path / "secret")
    assert RecordedShell(folder).name == "host-a"


def test_recorded_symlink_inside_the_folder_is_followed(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "df.txt").write_text("Filesystem Type 1024-blocks Used Available Capacity Mounted on\n")
    (tmp_path / "df.txt").symlink_to(Path("real") / "df.txt")
    result = RecordedShell(tmp_path).run(Command("df.txt", ("df", "-PT")))
    assert result.ok and result.stdout.startswith("Filesystem Type")


def test_recorded_fifo_is_refused_without_blocking(tmp_path: Path, deadline: None) -> None:
    os.mkfifo(tmp_path / "nvidia-smi-q.xml")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "lspci.txt").symlink_to("fifo")  # inside the folder, but still not a regular file
    shell = RecordedShell(tmp_path)
    start = time.monotonic()
    xml = shell.run(Command("nvidia-smi-q.xml", ("nvidia-smi", "-q", "-x")))
    lspci = shell.run(Command("lspci.txt", ("lspci",)))
    assert time.monotonic() - start < 2
    assert xml.refused == "nvidia-smi-q.xml is a FIFO, not a regular file" and not xml.ok
    assert lspci.refused == "lspci.txt is a FIFO, not a regular file"


def test_recorded_folder_in_place_of_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "mdstat.txt").mkdir()
    result = RecordedShell(tmp_path).run(Command("mdstat.txt", ("cat", "/proc/mdstat")))
    assert result.refused == "mdstat.txt is a folder, not a regular file"


def test_recorded_file_over_the_cap_is_cut_with_a_note(tmp_path: Path) -> None:
    with (tmp_path / "pip-list.txt").open("wb") as fh:
        fh.write(b"torch 2.5.1\n")
        fh.truncate(70 * 1024 * 1024)  # sparse: 70 MiB on paper, nothing on disk
    result = RecordedShell(tmp_path).run(Command("pip-list.txt", ("pip", "list")))
    assert result.ok and result.stdout.startswith("torch 2.5.1\n")
    assert len(result.stdout) == 64 * 1024 * 1024
    assert result.cut == "recorded pip-list.txt cut at its first 64 MiB (the file holds 70 MiB)"


def test_gather_notes_a_refused_recording(tmp_path: Path, deadline: None) -> None:
    (tmp_path / "df.txt").symlink_to("/dev/zero")
    os.mkfifo(tmp_path / "meminfo.txt")
    facts = gather_facts(RecordedShell(tmp_path))
    notes = {n.subject: n.reason for n in facts.notes}
    assert notes["recorded.df.txt"] == "recorded output of `df -PT` refused: df.txt is a symlink that leaves the folder"
    assert "meminfo.txt is a FIFO" in notes["recorded.meminfo.txt"]
    assert "df.txt is a symlink that leaves the folder" in notes["storage.mounts"]
