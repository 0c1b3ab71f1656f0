"""`svdops facts|check --from-dir` on a folder someone else made: symlinks out, FIFOs, oversized files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO, recorded_host

SECRET = "root:$6$svdops-test-not-a-hash$fake-shadow-line:19000:0:99999:7:::"


def svdops(*args: str) -> subprocess.CompletedProcess[str]:
    """A real process: a FIFO that blocks must fail the test by timeout, not hang the suite."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "svdops", *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    secret = tmp_path / "shadow"
    secret.write_text(SECRET + "\n")
    folder = tmp_path / "bundle"
    shutil.copytree(recorded_host("h100-sxm-ubuntu2404"), folder)
    (folder / "torch-env.txt.err").unlink(missing_ok=True)
    (folder / "torch-env.txt.err").symlink_to(secret)
    (folder / "df.txt").unlink()
    (folder / "df.txt").symlink_to("/dev/zero")
    (folder / "mdstat.txt").unlink(missing_ok=True)
    os.mkfifo(folder / "mdstat.txt")
    (folder / "hostname.txt").unlink(missing_ok=True)
    (folder / "hostname.txt").symlink_to(secret)
    with (folder / "pip-list.txt").open("ab") as fh:
        fh.truncate(70 * 1024 * 1024)
    return folder


def test_facts_json_of_a_hostile_folder_reads_nothing_outside_it(hostile: Path) -> None:
    proc = svdops("facts", "--from-dir", str(hostile), "--json")
    assert proc.returncode == 0, proc.stderr
    assert "svdops-test-not-a-hash" not in proc.stdout + proc.stderr
    facts = json.loads(proc.stdout)
    notes = {n["subject"]: n["reason"] for n in facts["notes"]}
    assert notes["recorded.torch-env.txt"].endswith("refused: torch-env.txt.err is a symlink that leaves the folder")
    assert notes["recorded.df.txt"].endswith("refused: df.txt is a symlink that leaves the folder")
    assert notes["recorded.mdstat.txt"].endswith("refused: mdstat.txt is a FIFO, not a regular file")
    assert notes["recorded.hostname.txt"].endswith("refused: hostname.txt is a symlink that leaves the folder")
    assert notes["recorded.pip-list.txt"] == "recorded pip-list.txt cut at its first 64 MiB (the file holds 70 MiB)"
    assert facts["hostname"] != SECRET and [g["name"] for g in facts["gpus"]] == ["NVIDIA H100 80GB HBM3"]


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_check_of_a_hostile_folder_is_a_judgement_not_a_crash(hostile: Path, fmt: str) -> None:
    proc = svdops("check", "--from-dir", str(hostile), "--format", fmt, "--verbose")
    assert proc.returncode in (0, 1), proc.stderr  # judged, not exit 70 or a traceback
    assert "Traceback" not in proc.stderr
    assert "svdops-test-not-a-hash" not in proc.stdout + proc.stderr
    # the reason is shown where the check's answer is: a note under the table, the facts' notes in JSON
    assert "refused: df.txt is a symlink that leaves the folder" in proc.stdout
    assert "refused: mdstat.txt is a FIFO, not a regular file" in proc.stdout


def test_check_junit_of_a_hostile_folder_reads_nothing_outside_it(hostile: Path) -> None:
    proc = svdops("check", "--from-dir", str(hostile), "--format", "junit")
    assert proc.returncode in (0, 1), proc.stderr
    assert "svdops-test-not-a-hash" not in proc.stdout + proc.stderr
