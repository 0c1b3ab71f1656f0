"""Host data is data: rich markup and terminal control sequences in what a host reports are shown, never obeyed.

Every case runs the real command (click's CliRunner) on a real recorded host whose names were rewritten
to lie (tests/support/hostile.py). Before svdops.text, a `[/]` in a host name was a MarkupError (exit 70)
and an OSC/CSI sequence in a GPU name reached the terminal raw.
"""

from __future__ import annotations

import json
import shutil
import xml.dom.minidom
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from svdops.cli.main import cli
from svdops.host.facts import HostFacts
from svdops.text import printable
from tests.support.hostile import (
    CPU_MODEL,
    GPU_NAME,
    HOSTNAME,
    MARKUP,
    OS_NAME,
    XML_GPU_NAME,
    hostile_host,
    raw_controls_in,
)
from tests.support.paths import recorded_host
from tests.support.profiles import GPU_ONLY

EXIT_INTERNAL = 70


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), prog_name="svdops")
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return hostile_host(tmp_path_factory.mktemp("hostile") / "evil")


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("profiles") / "gpu-only.yaml"
    path.write_text(GPU_ONLY)
    return path


def visible(text: str) -> str:
    """How a one-line name must appear in a table: every control written out."""
    return printable(text, one_line=True)


def assert_xml_1_0(document: str) -> None:
    """Parses with expat twice (ElementTree and minidom), and holds no character XML 1.0 forbids or
    discourages (C0 but TAB/LF/CR, C1), nor any control a terminal acts on when someone cats the file."""
    ET.fromstring(document.encode("utf-8"))
    xml.dom.minidom.parseString(document.encode("utf-8"))
    bad = sorted({hex(ord(c)) for c in document if (ord(c) < 0x20 and c not in "\t\n") or 0x7F <= ord(c) <= 0x9F})
    assert bad == []


# --- the recorded host, every output format ---------------------------------------------------------------


def test_check_table_on_a_lying_host_exits_normally_and_shows_the_text(host: Path, profile: Path) -> None:
    clean_code, _, _ = run("check", "--from-dir", str(recorded_host("h100-sxm-ubuntu2404")), "-p", str(profile))
    code, out, err = run("check", "--from-dir", str(host), "-p", str(profile), "-v")
    assert code == clean_code == 0, err
    assert raw_controls_in(out) == [] and raw_controls_in(err) == []
    assert "pwned" in out and "\\x1b]0;" in out and "[bold]x" in out


def test_check_table_to_a_file_writes_every_name_escaped(host: Path, profile: Path, tmp_path: Path) -> None:
    out_file = tmp_path / "check.txt"
    code, _, err = run("check", "--from-dir", str(host), "-p", str(profile), "-v", "-o", str(out_file))
    assert code == 0, err
    text = out_file.read_text(encoding="utf-8")
    assert raw_controls_in(text) == []
    assert visible(HOSTNAME) in text  # the title, whole
    assert MARKUP in text  # shown as typed, not applied
    assert "[/][bold]x[link=https://evil.example]y" in text  # the OS finding's actual value, wrapped


def test_check_json_parses_and_keeps_the_data_as_reported(host: Path, profile: Path) -> None:
    code, out, _ = run("check", "--from-dir", str(host), "-p", str(profile), "--format", "json")
    assert code == 0
    assert raw_controls_in(out) == []  # json.dumps writes \u001b, \u009b, \u0000
    doc = json.loads(out)
    assert doc["host"] == HOSTNAME
    assert doc["facts"]["os"]["pretty_name"] == OS_NAME
    assert doc["facts"]["cpu"]["model_name"] == CPU_MODEL
    assert [g["name"] for g in doc["facts"]["gpus"]] == [XML_GPU_NAME]


def test_check_junit_is_valid_xml_with_the_text_visible(host: Path, profile: Path, tmp_path: Path) -> None:
    code, out, _ = run("check", "--from-dir", str(host), "-p", str(profile), "--format", "junit")
    assert code == 0
    assert raw_controls_in(out) == []
    assert_xml_1_0(out)
    suite = ET.fromstring(out).find("testsuite")
    assert suite is not None
    assert suite.get("hostname") == printable(HOSTNAME)
    assert "\\x1b]0;pwned\\x07" in suite.get("name", "") and MARKUP in suite.get("name", "")
    outputs = "".join(e.text or "" for e in suite.iter("system-out"))
    names = " ".join(case.get("name", "") for case in suite.iter("testcase"))
    assert "pwned" in outputs + names or "pwned" in out


def test_facts_table_on_a_lying_host(host: Path) -> None:
    code, out, err = run("facts", "--from-dir", str(host))
    assert code == 0, err
    assert raw_controls_in(out) == [] and raw_controls_in(err) == []
    for piece in ("[/][bold]x", "\\x1b]0;pwned\\x07", "\\x1b[2J", "\\x9b", "\\x00", "Xeon\\r"):
        assert piece in out, piece


def test_facts_table_to_a_file(host: Path, tmp_path: Path) -> None:
    out_file = tmp_path / "facts.txt"
    code, _, err = run("facts", "--from-dir", str(host), "-o", str(out_file))
    assert code == 0, err
    text = out_file.read_text(encoding="utf-8")
    assert raw_controls_in(text) == []
    assert visible(HOSTNAME) in text and visible(OS_NAME) in text and visible(CPU_MODEL) in text
    # a long name folds within its column instead of squeezing the others out of the table
    assert "[/][bold]x[link=https://evil.example]y[/link]" in text and "79.6 GiB" in text and "gen5 x16" in text


def test_facts_json_round_trips_the_hostile_text(host: Path) -> None:
    code, out, _ = run("facts", "--from-dir", str(host), "--json")
    assert code == 0
    assert raw_controls_in(out) == []
    data = json.loads(out)
    assert data["hostname"] == HOSTNAME
    assert HostFacts.from_dict(data).to_dict() == data


# --- a saved snapshot: anything JSON can carry, a lone surrogate included ----------------------------------


@pytest.fixture(scope="module")
def snapshot(host: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    code, out, _ = run("facts", "--from-dir", str(host), "--json")
    assert code == 0
    data = json.loads(out)
    for gpu in data["gpus"]:
        gpu["name"] = GPU_NAME
    # a lone surrogate no encoder writes, a right-to-left override, and a newline that would forge a line
    data["hostname"] = HOSTNAME + "\ud800\u202e\n[red]gpu99 ok"
    path = tmp_path_factory.mktemp("snapshot") / "facts.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.parametrize("fmt", ["table", "json", "junit"])
def test_check_of_a_saved_snapshot(snapshot: Path, profile: Path, fmt: str) -> None:
    code, out, err = run("check", "--facts", str(snapshot), "-p", str(profile), "--format", fmt, "-v")
    assert code == 0, err
    assert raw_controls_in(out) == []
    assert "\ud800" not in out and "\u202e" not in out
    if fmt == "json":
        assert json.loads(out)["host"].startswith(HOSTNAME)
    elif fmt == "junit":
        assert_xml_1_0(out)
    else:
        assert "\\ud800\\u202e\\n[red]gpu99" in out
        assert not any(
            line.lstrip().startswith("[red]gpu99") or line.lstrip().startswith("gpu99") for line in out.splitlines()
        )


# --- a profile's free text and file name ---------------------------------------------------------------


def test_a_profile_named_with_markup_and_controls(host: Path, tmp_path: Path) -> None:
    folder = tmp_path / "profiles"
    folder.mkdir()
    name = "lab[bold red]x\x1b[2J"
    (folder / f"{name}.yaml").write_text(
        GPU_ONLY.replace('description: "', 'description: "[bold red]\\x1b]0;pwned\\x07 '), encoding="utf-8"
    )
    code, out, err = run("check", "--from-dir", str(host), "-p", str(folder / f"{name}.yaml"))
    assert code == 0, err
    assert raw_controls_in(out) == [] and "lab[bold red]x\\x1b[2J" in out
    result = CliRunner(env={"SVDOPS_PROFILE_PATH": str(folder)}).invoke(cli, ["profiles", "list"])
    assert result.exit_code == 0, result.output
    assert raw_controls_in(result.stdout) == []
    assert "lab[bold red]x\\x1b[2J" in result.stdout and "red]\\x1b]0;pwned\\x07" in result.stdout


# --- error messages quote what they were given ------------------------------------------------------------


def test_an_error_naming_a_hostile_path_is_escaped(tmp_path: Path) -> None:
    missing = tmp_path / "gone\x1b]0;pwned\x07\x9b"
    code, _, err = run("facts", "--from-dir", str(missing))
    assert code == 2
    assert raw_controls_in(err) == []
    assert "gone\\x1b]0;pwned\\x07\\x9b" in err


# --- the HTML report ----------------------------------------------------------------------------------------


def test_report_of_a_hostile_check_file_neutralises_controls(host: Path, profile: Path, tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    pytest.importorskip("jinja2")
    check_file = tmp_path / "check.json"
    code, out, _ = run("check", "--from-dir", str(host), "-p", str(profile), "--format", "json")
    assert code == 0
    check_file.write_text(out, encoding="utf-8")
    runs = tmp_path / "runs"
    shutil.copytree(Path(__file__).resolve().parents[2] / "reports" / "examples" / "runs", runs)
    broken = runs / "evil\x1b]0;pwned\x07\x9b"  # a run folder copied in with a lying name, and broken
    broken.mkdir()
    (broken / "results.json").write_text("{")
    html_file = tmp_path / "report.html"
    code, out, err = run("report", str(runs), "--check", str(check_file), "-o", str(html_file))
    assert code == 0, err
    html = html_file.read_text(encoding="utf-8")
    assert raw_controls_in(html) == []
    assert "\\x1b]0;pwned\\x07" in html and "[/][bold]x" in html
    assert raw_controls_in(out) == [] and raw_controls_in(err) == []
    assert "skipped: " in err and "evil\\x1b]0;pwned\\x07\\x9b" in err


# --- svdops plan calibrates on run folders: their GPU names came from the hosts that wrote them ---------------


@pytest.mark.parametrize("mode", ["--calibrate-from", "--validate"])
def test_plan_on_runs_with_a_lying_gpu_name(tmp_path: Path, mode: str) -> None:
    runs = tmp_path / "runs"
    shutil.copytree(Path(__file__).resolve().parents[2] / "reports" / "examples" / "runs", runs)
    for path in runs.glob("*/*.json"):  # JSON escapes, as a bench on that host would have written them
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace("NVIDIA H100 80GB HBM3", "NVIDIA H100 [/]\\u001b]0;pwned\\u0007\\u009b"))
    code, out, err = run("plan", mode, str(runs))
    assert code in (0, 1), err  # 70 (MarkupError) before
    assert raw_controls_in(out) == [] and raw_controls_in(err) == []
    assert "NVIDIA H100 [/]\\x1b]0;pwned\\x07\\x9b" in out


# --- svdops bench prints what the run recorded: GPU names and notes that quote host output ---------------


def test_bench_summary_of_a_run_with_lying_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from svdops.bench.records import BenchOutcome
    from svdops.cli.bench import render
    from svdops.runs.store import load_run

    example = sorted((Path(__file__).resolve().parents[2] / "reports" / "examples" / "runs").iterdir())[0]
    folder = tmp_path / "run"
    shutil.copytree(example, folder)
    results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    results["gpu"] = GPU_NAME
    results["notes"] = [*results.get("notes", []), "pip said: " + OS_NAME]
    (folder / "results.json").write_text(json.dumps(results), encoding="utf-8")
    run_doc = load_run(folder).results
    render(BenchOutcome(path=folder, status="ok", results=run_doc, points=[]))  # MarkupError before
    out = capsys.readouterr().out
    assert raw_controls_in(out) == []
    assert "note: pip said: Ubuntu [/][bold]x" in out and "\\x1b]0;pwned\\x07" in out
