"""Run folders: complete or invisible, and readable with plain pandas."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from svdops.errors import BadInputError
from svdops.runs.store import (
    RunWriter,
    list_runs,
    load_run,
    run_name,
    sweep_unfinished,
    unfinished_notes,
    unfinished_runs,
)

WHEN = datetime(2026, 11, 26, 10, 15, 0, tzinfo=UTC)


def write_run(store: Path, name: str = "20261126T101500Z-gpu01-tiny", status: str = "ok") -> Path:
    with RunWriter(store, name) as run:
        run.write_json("config.json", {"scenario": "tiny", "weights": {"kind": "random-init"}})
        run.write_json("facts.json", None)
        run.write_json("results.json", {"status": status, "e2e_s": float("nan")})
        rows = [[0, 0.125, False, None], [1, 0.5, True, "x"]]
        run.write_csv("iterations.csv", ["iteration", "e2e_s", "warmup", "note"], rows)
        return run.commit()


def test_run_name_sorts_by_time_and_is_filesystem_safe():
    assert run_name("gpu01", "svd-xt-25f", WHEN) == "20261126T101500Z-gpu01-svd-xt-25f"
    assert run_name("a b/c:d", "x/y", WHEN) == "20261126T101500Z-a_b_c_d-x_y"
    assert run_name("", "", WHEN) == "20261126T101500Z-host-run"


def test_committed_run_is_readable_with_pandas_and_load_run(tmp_path):
    path = write_run(tmp_path)
    assert path == tmp_path / "20261126T101500Z-gpu01-tiny"
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no hidden leftovers
    frame = pd.read_csv(path / "iterations.csv")
    assert list(frame["e2e_s"]) == [0.125, 0.5]
    assert list(frame["warmup"]) == [0, 1]
    assert frame["note"].isna().tolist() == [True, False]
    results = json.loads((path / "results.json").read_text())
    assert results["e2e_s"] is None  # NaN is written as null: strict JSON
    run = load_run(path)
    assert run.status == "ok"
    assert run.facts is None
    assert run.config.weights.kind == "random-init"
    assert run.table("iterations") == [
        {"iteration": 0, "e2e_s": 0.125, "warmup": 0, "note": None},
        {"iteration": 1, "e2e_s": 0.5, "warmup": 1, "note": "x"},
    ]
    assert run.table("absent") == []
    assert list(run.frame("iterations")["iteration"]) == [0, 1]
    assert [r.name for r in list_runs(tmp_path)] == [path.name]


def test_load_run_reads_only_the_runs_own_regular_files(tmp_path):
    # bench and plan calibration read runs through load_run: the same bounded reader as the report
    path = write_run(tmp_path)
    secret = tmp_path.parent / f"{tmp_path.name}-outside.json"
    secret.write_text('{"status": "ok", "stolen": true}')
    (path / "config.json").unlink()
    (path / "config.json").symlink_to(secret)
    with pytest.raises(BadInputError, match=r"config\.json") as caught:
        load_run(path)
    assert "link" in caught.value.message
    (path / "config.json").unlink()
    (path / "config.json").symlink_to("/dev/zero")  # would read until memory ran out
    with pytest.raises(BadInputError, match=r"config\.json"):
        load_run(path)
    (path / "config.json").unlink()
    run = load_run(path)
    (path / "iterations.csv").unlink()
    os.mkfifo(path / "iterations.csv")  # would block forever
    with pytest.raises(BadInputError, match=r"iterations\.csv"):
        run.table("iterations")
    with pytest.raises(BadInputError, match=r"iterations\.csv"):
        run.frame("iterations")


def test_same_name_twice_gets_a_suffix(tmp_path):
    first, second = write_run(tmp_path), write_run(tmp_path)
    assert second.name == first.name + "-2"
    assert len(list_runs(tmp_path)) == 2


def test_failure_before_commit_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), RunWriter(tmp_path, "20261126T101500Z-gpu01-tiny") as run:
        run.write_json("config.json", {})
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_killed_writer_leaves_no_visible_run(tmp_path):
    script = textwrap.dedent(
        """
        import sys, time
        from svdops.runs.store import RunWriter
        run = RunWriter(sys.argv[1], "20261126T101500Z-gpu01-tiny")
        run.write_json("config.json", {"scenario": "tiny"})
        run.write_csv("iterations.csv", ["iteration"], [[0]])
        print("written", flush=True)
        time.sleep(60)
        run.commit()
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "written"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    leftovers = list(tmp_path.iterdir())
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".tmp-")
    assert list_runs(tmp_path) == []
    with pytest.raises(BadInputError, match="unfinished run"):
        load_run(leftovers[0])
    # A later writer is not disturbed by the leftover.
    write_run(tmp_path)
    assert len(list_runs(tmp_path)) == 1


def test_bad_paths_are_clear_errors(tmp_path):
    with pytest.raises(BadInputError, match="not a run folder"):
        load_run(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(BadInputError, match="cannot create the run store") as err:
        RunWriter(blocker / "store", "x")
    assert err.value.hint and "--store" in err.value.hint
    assert list_runs(tmp_path / "nowhere") == []


WRITER = textwrap.dedent(
    """
    import sys, time
    from svdops.runs.store import RunWriter
    run = RunWriter(sys.argv[1], sys.argv[2])
    run.write_json("config.json", {"scenario": "tiny"})
    print("written", flush=True)
    time.sleep(120)
    """
)


def _start_writer(store: Path, name: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(store), name], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "written"
    return proc


def test_unfinished_runs_of_killed_writers_are_reported_then_swept(tmp_path):
    killed, alive = _start_writer(tmp_path, "killed"), _start_writer(tmp_path, "alive")
    try:
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait(timeout=30)
        found = {u.path.name: u for u in unfinished_runs(tmp_path)}
        assert set(found) == {f".tmp-killed-{killed.pid}", f".tmp-alive-{alive.pid}"}
        assert found[f".tmp-killed-{killed.pid}"].writer_alive is False
        assert found[f".tmp-killed-{killed.pid}"].pid == killed.pid
        assert found[f".tmp-alive-{alive.pid}"].writer_alive is True
        # recent: kept (a writer on another host of a shared store has a PID that means nothing here)
        removed, kept = sweep_unfinished(tmp_path)
        assert removed == [] and len(kept) == 2
        # a day later: the killed writer's folder goes, the live writer's stays however old it is
        removed, kept = sweep_unfinished(tmp_path, now=time.time() + 2 * 24 * 3600)
        assert [u.path.name for u in removed] == [f".tmp-killed-{killed.pid}"]
        assert [u.path.name for u in kept] == [f".tmp-alive-{alive.pid}"]
        assert sorted(p.name for p in tmp_path.iterdir()) == [f".tmp-alive-{alive.pid}"]
    finally:
        for proc in (killed, alive):
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)


def test_a_new_writer_sweeps_stale_remains_and_reports_the_rest(tmp_path):
    proc = _start_writer(tmp_path, "old")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    stale = tmp_path / f".tmp-old-{proc.pid}"
    week_ago = time.time() - 7 * 24 * 3600
    os.utime(stale, (week_ago, week_ago))
    fresh = tmp_path / ".tmp-fresh-999999999"  # no such PID: its writer is gone, but it is recent
    fresh.mkdir()
    with RunWriter(tmp_path, "new") as run:
        assert [u.path for u in run.swept] == [stale]
        assert [u.path for u in run.unfinished] == [fresh]
        # the bench puts both into the run's notes (results.json, the summary it prints, the report)
        swept_note, kept_note = unfinished_notes(run)
        assert swept_note.startswith("removed 1 unfinished run folder(s)") and stale.name in swept_note
        assert kept_note.startswith("1 unfinished run folder(s) whose writer is gone") and fresh.name in kept_note
    assert not stale.exists() and fresh.exists()
    with RunWriter(tmp_path, "quiet") as run:
        assert [u.path for u in run.unfinished] == [fresh] and len(unfinished_notes(run)) == 1


def test_a_reused_pid_is_not_taken_for_the_writer(tmp_path):
    # a live PID (this test) counts as the writer only if it started before the folder last changed
    folder = tmp_path / f".tmp-run-{os.getpid()}"
    folder.mkdir()
    assert unfinished_runs(tmp_path)[0].writer_alive is True
    os.utime(folder, (0, 0))  # changed in 1970: a process running now cannot have written it
    assert unfinished_runs(tmp_path)[0].writer_alive is False
