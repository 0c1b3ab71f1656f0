"""`svdops bench` as a person runs it: exit codes, messages, Ctrl-C and kill on a real process."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from svdops.bench import runner
from svdops.cli.bench import bench
from svdops.host.facts import HostFacts
from svdops.runs.store import list_runs

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
ROOT = Path(__file__).resolve().parents[2]
TINY = ["--scenario", "tiny", "--iterations", "1", "--warmup", "0", "--steps", "2"]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def no_facts(monkeypatch):
    # Host facts are the probe's job and have their own tests; here they would only cost time.
    monkeypatch.setattr(runner, "gather_local_facts", lambda use_nvml: (None, "facts skipped in this test"))


def test_tiny_run_prints_a_summary_and_records_this_hosts_facts(tmp_path):
    result = CliRunner().invoke(bench, [*TINY, "--store", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "random-init (tiny architecture)" in result.output
    (run,) = list_runs(tmp_path)
    assert f"run: {run.path}" in result.output
    assert run.facts is not None, run.results.notes
    facts = HostFacts.from_dict(run.facts)
    assert facts.python.torch_version is not None  # gathered from the interpreter that ran the bench
    assert run.path.name.endswith(f"-{facts.hostname}-tiny")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_gpu_scenario_without_a_gpu_suggests_tiny(tmp_path):
    result = CliRunner().invoke(bench, ["--store", str(tmp_path)])
    assert result.exit_code == 2
    assert "no CUDA GPU is visible" in result.output and "--scenario tiny" in result.output
    assert "Traceback" not in result.output
    result = CliRunner().invoke(bench, ["--scenario", "tiny", "--device", "cuda", "--store", str(tmp_path)])
    assert result.exit_code == 2 and "--device cuda" in result.output
    assert not tmp_path.exists() or list_runs(tmp_path) == []


@pytest.mark.usefixtures("no_facts")
def test_bad_input_exits_2_without_a_traceback(tmp_path):
    result = CliRunner().invoke(bench, [*TINY, "--weights", str(tmp_path / "nope"), "--store", str(tmp_path)])
    assert result.exit_code == 2 and "weights folder does not exist" in result.output
    result = CliRunner().invoke(bench, [*TINY, "--sweep", "colour=1,2", "--store", str(tmp_path)])
    assert result.exit_code == 2 and "cannot sweep" in result.output
    result = CliRunner().invoke(bench, [*TINY, "--dtype", "fp16", "--device", "cpu", "--store", str(tmp_path)])
    assert result.exit_code == 2 and "--dtype fp32" in result.output
    assert "Traceback" not in result.output


@pytest.mark.usefixtures("no_facts")
def test_every_point_out_of_memory_exits_4_with_the_run_kept(tmp_path, monkeypatch):
    def no_memory_at_all(self, pipe, result, clock):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 30.00 GiB")

    monkeypatch.setattr(runner._Bench, "run_point", no_memory_at_all)
    result = CliRunner().invoke(bench, [*TINY, "--store", str(tmp_path)])
    assert result.exit_code == 4, result.output
    assert "no configuration ran (oom)" in result.output and "low-vram" in result.output
    (run,) = list_runs(tmp_path)
    assert run.status == "oom" and run.results.points[0].status == "oom"


def _start(tmp_path: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "svdops.bench", "--scenario", "tiny", "--store", str(tmp_path), *extra]
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_hidden_run(tmp_path: Path, proc: subprocess.Popen, timeout_s: float = 300) -> None:
    """The writer's hidden folder appears once the run has started (torch imported, facts gathered).

    The limits are generous on purpose: on a loaded CI machine importing torch alone can take minutes.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if tmp_path.exists() and any(p.name.startswith(".tmp-") for p in tmp_path.iterdir()):
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("the run never started")


def _interrupt_once_an_iteration_finished(tmp_path: Path, signum: int) -> tuple[int, str]:
    """Run 500 iterations with stderr on a pseudo-terminal, so the CLI draws its progress bar, and send
    `signum` once the bar counts a finished iteration. A fixed sleep instead raced model loading on a
    loaded machine: the signal came before any iteration, and "keeps the finished work" held vacuously."""
    master, slave = pty.openpty()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "COLUMNS": "400"}
    argv = [sys.executable, "-m", "svdops.bench", "--scenario", "tiny", "--store", str(tmp_path),
            "--iterations", "500", "--warmup", "0", "--steps", "1"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    seen, signalled = b"", False
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the process closed its end
                    break
                if not chunk:
                    break
                seen += chunk
            if not signalled and re.search(rb"\b[1-9]\d*/500\b", seen):
                proc.send_signal(signum)
                signalled = True
            if proc.poll() is not None and not ready:
                break
        assert signalled, "no iteration finished in time: " + seen.decode(errors="replace")[-2000:]
        proc.wait(timeout=300)
    finally:
        proc.kill()
        os.close(master)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode(errors="replace"))
    return proc.returncode, text


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupting_a_real_process_keeps_the_run_and_exits_130(tmp_path, signum):
    returncode, err = _interrupt_once_an_iteration_finished(tmp_path, signum)
    assert returncode == 130, err
    assert "interrupted" in err and "kept in" in err and "Traceback" not in err
    (run,) = list_runs(tmp_path)
    assert run.status == "interrupted"
    assert not any(p.name.startswith(".tmp-") for p in tmp_path.iterdir())
    results = json.loads((run.path / "results.json").read_text())
    done = results["points"][0]["iterations_done"]
    assert 1 <= done < 500  # interrupted after some work, not before any and not after all
    assert len(run.table("iterations")) == done


@pytest.mark.slow
def test_killed_bench_process_leaves_no_visible_run(tmp_path):
    proc = _start(tmp_path, "--iterations", "500", "--warmup", "0", "--steps", "1")
    try:
        _wait_for_hidden_run(tmp_path, proc)
        time.sleep(1.0)
        proc.kill()  # SIGKILL: no handler runs, nothing is cleaned up
        proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert list_runs(tmp_path) == []
    left = list(tmp_path.iterdir())
    assert left and all(p.name.startswith(".tmp-") for p in left)  # the half-written run stays hidden
