"""One bad run never costs the report: run folders and check files damaged the ways disks, editors and
hostile hands damage them, each read inside its own boundary.

Every store here is a copy of the committed example runs (reports/examples/runs) with one thing broken;
the report must still be written for the other runs and name the broken file and why, in its result, on
the terminal and in the HTML (escaped). Reads that would block (a FIFO) or never end (/dev/zero) are
guarded by an alarm, so a regression fails here instead of hanging the suite.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from svdops.cli.main import cli
from svdops.errors import BadInputError
from svdops.report import ReportOptions, build_report, render_html, write_report
from svdops.report.frames import groups_frame, points_frame
from svdops.report.run_fields import BUG_NOTE
from tests.support.run_mutations import EXAMPLE_CHECKS, EXAMPLE_RUNS, example_runs

H100_RUN = "20261126T112847Z-h100-sxm-reference-svd-xt-25f"  # the example run with telemetry samples
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_read_may_block():
    def hung(signum, frame):
        raise TimeoutError("the report blocked reading a run folder")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    target = tmp_path / "store"
    shutil.copytree(EXAMPLE_RUNS, target)
    return target


def report(store: Path, tmp_path: Path, **options) -> tuple[list[str], str, int]:
    """(notes, html, runs reported) through write_report, the function `svdops report` calls."""
    out = tmp_path / "report.html"
    result = write_report([str(store)], out, ReportOptions(**options))
    html = out.read_text(encoding="utf-8")
    assert not any(BUG_NOTE in note for note in result.skipped), result.skipped
    return result.skipped, html, result.runs


def only_note(notes: list[str], path: Path) -> str:
    named = [n for n in notes if n.startswith(str(path))]
    assert len(named) == 1, notes
    return named[0]


def edit_json(path: Path, change) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    change(doc)
    path.write_text(json.dumps(doc), encoding="utf-8")


ALL_RUNS = len(example_runs())


# --- results.json that is not JSON a run would write ------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (bytes(range(256)) * 4, "not UTF-8 text (byte 0x80 at offset 128)"),
        ('{"status": "ok", "scenario": "café"}'.encode("latin-1"), "not UTF-8 text (byte 0xe9"),
        (b"[" * 100_000, "nested too deeply"),
        (b'{"status": "ok", "build_s": 1' + b"0" * 5000 + b"}", "Exceeds the limit (4300 digits)"),
        (b'{"status": "ok", "points": [', "not JSON: Expecting value at line 1"),
    ],
    ids=["binary", "latin-1", "nested", "5000-digit-integer", "truncated"],
)
def test_an_unreadable_results_json_costs_only_its_run(store, tmp_path, content, reason):
    bad = store / H100_RUN / "results.json"
    bad.write_bytes(content)
    notes, html, runs = report(store, tmp_path)
    assert runs == ALL_RUNS - 1
    note = only_note(notes, bad)
    assert reason in note
    assert "Left out:" in html and note.split(":")[0] in html


def test_a_file_past_the_size_cap_is_skipped_unread(store, tmp_path):
    bad = store / H100_RUN / "facts.json"
    with bad.open("wb") as fh:
        fh.truncate(65 * 2**20)  # sparse: 65 MiB of size, no disk
    notes, _, runs = report(store, tmp_path)
    assert runs == ALL_RUNS - 1
    assert "68,157,440 bytes: larger than the 64 MiB a run file may be" in only_note(notes, bad)


@pytest.mark.parametrize("name", ["config.json", "facts.json", "versions.json"])
@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "outside", "folder", "dangling"])
def test_run_files_that_are_not_plain_files_of_the_run_are_not_read(store, tmp_path, name, kind):
    bad = store / H100_RUN / name
    bad.unlink()
    outside = tmp_path / "secret.json"
    outside.write_text('{"hostname": "SECRET-HOST", "status": "ok"}')
    if kind == "fifo":
        os.mkfifo(bad)
    elif kind == "dev-zero":
        bad.symlink_to("/dev/zero")
    elif kind == "outside":
        bad.symlink_to(outside)
    elif kind == "folder":
        bad.mkdir()
    else:
        bad.symlink_to(tmp_path / "nowhere")
    notes, html, runs = report(store, tmp_path)
    assert runs == ALL_RUNS - 1
    note = only_note(notes, bad)
    expected = {
        "fifo": "a FIFO, not a file",
        "dev-zero": "a symbolic link",
        "outside": "a symbolic link",
        "folder": "a folder, not a file",
        "dangling": "a symbolic link; run files are read only from the run folder itself",
    }[kind]
    assert expected in note
    assert "SECRET-HOST" not in html


def test_a_results_json_that_is_a_folder_or_a_fifo_is_named_not_passed_over(store, tmp_path):
    folder, fifo = store / H100_RUN / "results.json", store / example_runs()[3].name / "results.json"
    folder.unlink()
    folder.mkdir()
    fifo.unlink()
    os.mkfifo(fifo)
    notes, _, runs = report(store, tmp_path)
    assert runs == ALL_RUNS - 2
    assert "a folder, not a file" in only_note(notes, folder)
    assert "a FIFO, not a file" in only_note(notes, fifo)


def test_a_run_folder_linked_from_outside_the_store_is_not_followed(store, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(EXAMPLE_RUNS / H100_RUN, elsewhere)
    edit_json(elsewhere / "facts.json", lambda d: d.update(hostname="FROM-OUTSIDE"))
    link = store / "20261201T000000Z-linked-svd-xt-25f"
    link.symlink_to(elsewhere)
    inner = store / "20261201T000001Z-alias"
    inner.symlink_to(store / H100_RUN)  # a link inside the store is the same run, read once
    notes, html, runs = report(store, tmp_path)
    assert runs == ALL_RUNS
    assert "a symbolic link out of the store; not followed" in only_note(notes, link)
    assert "FROM-OUTSIDE" not in html


# --- values of the wrong kind: the run stays, the cell is empty -----------------------------------------


def test_config_request_that_is_not_a_mapping_keeps_the_run_with_a_note(store, tmp_path):
    edit_json(store / H100_RUN / "config.json", lambda d: d.update(request=["svd-xt-25f", 3]))
    data = build_report([str(store)], ReportOptions())
    row = data.run_table.set_index("run").loc[H100_RUN]
    assert "config.json.request: expected an object, got a list" in row["notes"]
    assert len(data.runs) == ALL_RUNS and data.skipped == []


def test_numbers_too_large_for_a_float_leave_empty_cells(store, tmp_path):
    big = 10**400

    def results(doc):
        doc["points"][0]["summary"]["videos_per_hour"] = big
        doc["world_size"] = big
        doc["nccl"] = [{"size_bytes": big, "busbw_gbps": 1e308, "algbw_gbps": 1.0}]

    edit_json(store / H100_RUN / "results.json", results)
    edit_json(store / H100_RUN / "facts.json", lambda d: d["gpus"][0].update(memory_total_mib=big, power_limit_w=big))
    notes, html, runs = report(store, tmp_path)
    assert runs == ALL_RUNS and notes == []
    assert "summary.videos_per_hour: 401-digit integer: too large to be a measurement" in html


def test_a_start_time_with_no_utc_equivalent_is_no_time(store, tmp_path):
    edit_json(store / H100_RUN / "results.json", lambda d: d.update(started_at="0001-01-01T00:00:00+14:00"))
    _, html, runs = report(store, tmp_path)
    assert runs == ALL_RUNS and H100_RUN in html


def test_a_point_configuration_of_mixed_kinds_across_runs_still_groups(store, tmp_path):
    def config(doc):
        doc["points"][0]["config"].update(steps="25", frames=[25], dtype={"a": 1}, height=576.0, decode_chunk=True)

    edit_json(store / H100_RUN / "results.json", config)
    data = build_report([str(store)], ReportOptions())
    points = points_frame(data.runs)
    row = points[points["run"] == H100_RUN].iloc[0]
    assert pd.isna(row["steps"]) and pd.isna(row["frames"]) and pd.isna(row["dtype"]) and row["height"] == 576
    assert not groups_frame(points).empty
    assert "{'a': 1}" not in render_html(data)


def test_a_hostname_that_is_not_text_falls_back_to_the_folder_name(store, tmp_path):
    edit_json(store / H100_RUN / "facts.json", lambda d: d.update(hostname=[["x"] * 3]))
    data = build_report([str(store)], ReportOptions())
    assert data.run_table.set_index("run").loc[H100_RUN, "host"] == "h100-sxm-reference"


# --- telemetry tables ---------------------------------------------------------------------------------------


def damage_csv(path: Path, row: int, column: str, value: str) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    cells = lines[row].split(",")
    cells[header.index(column)] = value
    lines[row] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def telemetry_charts(html: str) -> int:
    return html.count('class="telemetry"')


def test_text_in_numeric_telemetry_columns_is_a_gap_not_a_lost_report(store, tmp_path):
    _, before, _ = report(store, tmp_path)
    run = store / H100_RUN
    damage_csv(run / "telemetry.csv", 2, "t_mono", "abc")
    damage_csv(run / "telemetry.csv", 3, "power_w", "n/a")
    damage_csv(run / "telemetry.csv", 4, "sm_mhz", "1" + "0" * 400)
    damage_csv(run / "telemetry.csv", 5, "clocks_event_mask", "1e999")
    damage_csv(run / "marks.csv", 2, "t_mono", "later")
    damage_csv(run / "marks.csv", 3, "iteration", "inf")
    notes, html, runs = report(store, tmp_path)
    assert runs == ALL_RUNS and notes == []
    assert telemetry_charts(html) == telemetry_charts(before) > 0


def test_samples_without_any_readable_time_are_left_out_and_said(store, tmp_path):
    run = store / H100_RUN
    damage_csv(run / "telemetry.csv", 2, "t_mono", "abc")
    damage_csv(run / "telemetry.csv", 2, "t_unix", "")
    _, html, _ = report(store, tmp_path)
    assert "1 of 223 samples without a readable time left out" in html


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "folder"])
def test_a_telemetry_table_that_is_not_a_file_costs_its_chart_only(store, tmp_path, kind):
    _, before, _ = report(store, tmp_path)
    bad = store / H100_RUN / "telemetry.csv"
    bad.unlink()
    if kind == "fifo":
        os.mkfifo(bad)
    elif kind == "dev-zero":
        bad.symlink_to("/dev/zero")
    else:
        bad.mkdir()
    notes, html, runs = report(store, tmp_path)
    assert runs == ALL_RUNS
    assert only_note(notes, bad).startswith(f"{bad}: not read")
    assert telemetry_charts(html) == telemetry_charts(before) - 1


# --- check files ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (bytes(range(256)), "not UTF-8 text"),
        ('{"schema": "svdops.check/1", "host": "hôte"}'.encode("latin-1"), "not UTF-8 text"),
        (b"[" * 100_000, "nested too deeply"),
        (b'{"schema": 1' + b"0" * 5000 + b"}", "Exceeds the limit (4300 digits)"),
        (b'{"schema": ["svdops.check/1"]}', "not an svdops check result (schema 'list')"),
    ],
    ids=["binary", "latin-1", "nested", "5000-digit-integer", "schema-a-list"],
)
def test_an_unreadable_check_file_costs_only_itself(store, tmp_path, content, reason):
    bad = tmp_path / "bad-check.json"
    bad.write_bytes(content)
    good = EXAMPLE_CHECKS / "cpu-devbox.json"
    notes, html, runs = report(store, tmp_path, checks=(bad, good))
    assert runs == ALL_RUNS
    assert reason in only_note(notes, bad)
    assert "cpu-devbox" in html


def test_check_documents_with_parts_of_the_wrong_kind_are_read_for_what_they_have(store, tmp_path):
    fleet = tmp_path / "fleet.json"
    fleet.write_text(
        json.dumps(
            {
                "schema": "svdops.fleet-check/1",
                "profile": ["x"],
                "hosts": [
                    {"name": "gpu07", "check": {"host": {"a": 1}, "findings": 5, "summary": [1]}},
                    {"name": ["gpu08"], "status": "unreachable", "message": {"why": "?"}},
                    "not a host",
                ],
            }
        )
    )
    single = tmp_path / "single.json"
    single.write_text(json.dumps({"schema": "svdops.check/1", "host": "gpu09", "findings": {"id": "x"}}))
    notes, html, _ = report(store, tmp_path, checks=(fleet, single))
    assert notes == []
    assert "gpu09" in html


def test_a_check_file_behind_a_link_to_a_device_is_not_read(store, tmp_path):
    link = tmp_path / "check.json"
    link.symlink_to("/dev/zero")
    notes, _, runs = report(store, tmp_path, checks=(link,))
    assert runs == ALL_RUNS and "a device, not a file" in only_note(notes, link)


# --- the HTML and the terminal ---------------------------------------------------------------------------------


def test_the_html_lists_the_skipped_runs_escaped(store, tmp_path):
    hostile = store / "20261201T000000Z-<img src=x onerror=alert(1)>-svd-xt-25f"
    shutil.copytree(EXAMPLE_RUNS / H100_RUN, hostile)
    (hostile / "results.json").write_bytes(b"\xff\xfe<script>alert(1)</script>")
    notes, html, runs = report(store, tmp_path)
    assert runs == ALL_RUNS
    assert "not UTF-8 text" in only_note(notes, hostile)
    assert "<img src=x" not in html and "<script>alert" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_cli_writes_the_report_when_one_run_among_good_ones_is_bad(store, tmp_path):
    bad = store / H100_RUN / "results.json"
    bad.write_bytes(b'{"status": "ok", "build_s": 1' + b"0" * 5000 + b"}")
    out = tmp_path / "report.html"
    result = CliRunner().invoke(cli, ["report", str(store), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert f"report: {ALL_RUNS - 1} run(s)" in result.output
    assert f"skipped: {bad}: not readable JSON: Exceeds the limit (4300 digits)" in result.output
    assert out.is_file() and str(bad) in out.read_text(encoding="utf-8")


def test_cli_in_a_fresh_process_survives_fifos_and_dev_zero_under_a_memory_limit(store, tmp_path):
    """A real `svdops report` process, 1 GiB of address space and 60 s: a read of /dev/zero or a FIFO
    would end in MemoryError, a kill or a hang; it must end in a report and two notes instead."""
    (store / H100_RUN / "facts.json").unlink()
    (store / H100_RUN / "facts.json").symlink_to("/dev/zero")
    fifo_run = store / example_runs()[4].name
    (fifo_run / "config.json").unlink()
    os.mkfifo(fifo_run / "config.json")
    out = tmp_path / "report.html"

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (2**30 + 2**29, 2**30 + 2**29))

    done = subprocess.run(
        [sys.executable, "-m", "svdops.cli.main", "report", str(store), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=limit,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"{store / H100_RUN / 'facts.json'}: a symbolic link" in done.stderr
    assert f"{fifo_run / 'config.json'}: a FIFO, not a file" in done.stderr
    assert out.is_file()


def test_nothing_usable_left_is_a_clear_exit_2_naming_the_file(tmp_path):
    store = tmp_path / "store"
    shutil.copytree(EXAMPLE_RUNS / H100_RUN, store / H100_RUN)
    bad = store / H100_RUN / "results.json"
    bad.write_bytes(b"\x00" * 10)
    with pytest.raises(BadInputError, match="no run to report: 0 run"):
        write_report([str(store)], tmp_path / "r.html")
    result = CliRunner().invoke(cli, ["report", str(store), "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 2, result.output
    assert f"1 left out, first {bad}: not JSON" in result.output
    assert not (tmp_path / "r.html").exists()
