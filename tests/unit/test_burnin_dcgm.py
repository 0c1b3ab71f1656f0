"""DCGM diagnostics read from real `dcgmi diag -j` outputs (tests/fixtures/corpus/dcgm, provenance in its
README) and run through a real executable standing in for dcgmi."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from svdops.bench.burnin import BurninRequest
from svdops.bench.burnin.dcgm import DcgmError, checks_of_test, parse_diag, run_diag
from svdops.bench.burnin.run import run_burnin
from svdops.cli.main import cli
from svdops.runs.documents import BurnIn
from tests.support.paths import FIXTURES

DCGM = FIXTURES / "corpus" / "dcgm"
REAL_3_1 = DCGM / "nvidia-dcgm__jsonresulttests-3.1.0-8gpu.txt"
REAL_4_EXCERPT = DCGM / "nvidia-dcgm-issue215__dcgm4-r3-diagnostic-8gpu.excerpt"
STANDIN_4 = DCGM / "standin__dcgm4-r2-memory-fail-2gpu.json"
STANDIN_3 = DCGM / "standin__dcgm3-r1-persistence-warn.json"


def test_real_dcgm_3_1_output_of_eight_gpus_reads_per_test_and_gpu() -> None:
    text = REAL_3_1.read_text()
    assert text.lstrip().startswith("WARNING"), "the recorded output starts with a line before the JSON"
    diag = parse_diag(text)
    assert diag.version == "3.1.0"
    names = {c.name for c in diag.checks}
    # DCGM's own test names, kept as DCGM spells them
    assert {
        "Denylist",
        "NVML Library",
        "CUDA Main Library",
        "Persistence Mode",
        "Page Retirement/Row Remap",
        "Inforom",
        "software",
    } <= names
    deployment = [c for c in diag.checks if c.category == "Deployment"]
    assert len(deployment) == 9 * 8  # nine tests, each "0,1,2,3,4,5,6,7" -> one check per GPU
    assert {c.gpu for c in deployment} == set(range(8))
    software = [c for c in diag.checks if c.name == "software"]
    assert [c.gpu for c in software] == list(range(8)) and {c.category for c in software} == {"Custom"}
    assert {c.status for c in diag.checks} == {"pass"}
    assert all(c.source == "dcgm" for c in diag.checks)


def test_real_dcgm_4_results_by_entity_with_info_lists() -> None:
    # NVIDIA/DCGM issue 215: one test object of a level-3 run on DCGM 4, as pasted (ends with a comma)
    test = json.loads(REAL_4_EXCERPT.read_text().strip().rstrip(","))
    checks = checks_of_test(test, "Hardware")
    assert [c.gpu for c in checks] == list(range(8))
    assert {c.name for c in checks} == {"diagnostic"} and {c.status for c in checks} == {"pass"}
    assert "859.08 gigaflops" in (checks[0].detail or "")
    assert checks[3].detail is None  # DCGM 4 dropped the info of the later GPUs: nothing invented


def test_dcgm_4_document_failure_warning_and_skip_keep_dcgms_words() -> None:
    diag = parse_diag(STANDIN_4.read_text())
    assert (diag.version, diag.driver) == ("4.1.1", "570.124.06")
    by = {(c.name, c.gpu): c for c in diag.checks}
    assert by[("memory", 0)].status == "pass"
    failed = by[("memory", 1)]
    assert failed.status == "fail" and failed.category == "Hardware"
    assert "memory mismatch was detected on GPU 1" in failed.detail and "DCGM error 93" in failed.detail
    assert by[("pcie", 1)].status == "warn" and "link width 8X" in by[("pcie", 1)].detail
    assert by[("pcie", 0)].detail == "GPU to Host bandwidth: 24.02 GB/s"  # tabs from DCGM folded
    assert by[("nvbandwidth", 0)].status == "skip"


def test_dcgm_3_capital_statuses_and_gpu_lists() -> None:
    diag = parse_diag(STANDIN_3.read_text())
    assert diag.version == "3.3.5"
    remap = [c for c in diag.checks if c.name == "Page Retirement/Row Remap"]
    assert [(c.gpu, c.status) for c in remap] == [(0, "fail"), (1, "fail")]
    assert "row remapping failed" in remap[0].detail
    assert {c.status for c in diag.checks if c.name == "Persistence Mode"} == {"warn"}


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("", "no JSON document"),
        ("Error: unable to establish a connection to the specified host: localhost", "no JSON document"),
        ("{not json", "does not read"),
        ('{"DCGM Diagnostic": [1]}', "no 'DCGM Diagnostic'"),
        ('{"version": "4.2.3"}', "no 'DCGM Diagnostic'"),
        ('{"DCGM Diagnostic": {"test_categories": []}}', "lists no test results"),
        ('{"DCGM Diagnostic": {"test_categories": "x"}}', "lists no test results"),
        ("{" * 100_000, "does not read"),
    ],
)
def test_output_that_is_not_a_diagnostic_document_says_so(text: str, said: str) -> None:
    with pytest.raises(DcgmError, match=said):
        parse_diag(text)


def test_hostile_fields_are_bounded_and_unknown_statuses_are_not_passes() -> None:
    doc = {
        "DCGM Diagnostic": {
            "test_categories": [
                {
                    "category": 7,
                    "tests": [
                        None,
                        "x",
                        {
                            "name": "memory",
                            "results": [
                                {
                                    "entity_group": "GPU",
                                    "entity_id": -3,
                                    "status": "Inconclusive",
                                    "info": ["y" * 5000],
                                },
                                {"entity_group": "CPU", "entity_id": 0, "status": "Pass"},
                                {"gpu_ids": "0,0,a,1", "status": ["Pass"]},
                            ],
                        },
                    ],
                }
            ],
            "runtime_error": "  nvvs crashed\n",
        }
    }
    checks = parse_diag(json.dumps(doc)).checks
    first = checks[0]
    assert first.gpu is None and first.status == "warn" and "Inconclusive" in first.detail
    assert len(first.detail) <= 600
    assert checks[1].gpu is None and checks[1].status == "pass"  # a CPU entity is about the host
    assert [(c.gpu, c.status) for c in checks[2:4]] == [(0, "warn"), (1, "warn")]
    assert checks[-1].name == "runtime_error" and checks[-1].status == "fail" and checks[-1].detail == "nvvs crashed"


def _fake_dcgmi(tmp_path: Path, output: Path | None, code: int, *, sleep: float = 0) -> Path:
    """An executable named dcgmi that records its arguments and prints a recorded output."""
    script = tmp_path / "bin" / "dcgmi"
    script.parent.mkdir(exist_ok=True)
    body = f'printf "%s\\n" "$*" > {tmp_path}/argv\n'
    if sleep:
        body += f"sleep {sleep}\n"
    if output is not None:
        body += f"cat {output}\n"
    else:
        body += 'echo "Error: unable to establish a connection to the specified host: localhost" >&2\n'
    script.write_text(f"#!/bin/sh\n{body}exit {code}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def test_run_diag_runs_dcgmi_with_the_level_and_gpus_and_reads_a_failing_exit(tmp_path: Path) -> None:
    dcgmi = _fake_dcgmi(tmp_path, STANDIN_4, 226)  # dcgmi exits non-zero when a test fails
    diag = run_diag(str(dcgmi), 2, (0, 1))
    assert (tmp_path / "argv").read_text().split() == ["diag", "-r", "2", "-j", "-i", "0,1"]
    assert any(c.status == "fail" for c in diag.checks)


def test_run_diag_without_a_document_names_the_exit_and_what_dcgmi_said(tmp_path: Path) -> None:
    dcgmi = _fake_dcgmi(tmp_path, None, 255)
    with pytest.raises(DcgmError, match=r"exited 255.*unable to establish a connection"):
        run_diag(str(dcgmi), 1)


def test_run_diag_is_bounded_in_time(tmp_path: Path) -> None:
    dcgmi = _fake_dcgmi(tmp_path, STANDIN_4, 0, sleep=5)
    with pytest.raises(DcgmError, match="did not finish within 1 s"):
        run_diag(str(dcgmi), 1, timeout_s=1)
    with pytest.raises(DcgmError, match="cannot run"):
        run_diag(str(tmp_path / "missing"), 1)
    with pytest.raises(ValueError, match="not 1-4"):
        run_diag(str(dcgmi), 5)


def test_burnin_with_dcgm_records_dcgms_checks_in_the_run_folder(tmp_path: Path) -> None:
    dcgmi = _fake_dcgmi(tmp_path, STANDIN_4, 226)
    outcome = run_burnin(
        BurninRequest(store=str(tmp_path / "runs"), dcgm_level=2, device="cpu"),
        dcgmi=str(dcgmi),
        gather=lambda: (None, None),
    )
    assert outcome.failed and not outcome.interrupted
    assert not outcome.path.name.startswith(".tmp")
    doc = BurnIn.read(json.loads((outcome.path / "burnin.json").read_text()))
    assert (doc.mode, doc.status, doc.dcgm_version, doc.tests_finished) == ("dcgm", "failed", "4.1.1", ["dcgm"])
    assert ("memory", 1, "fail") in {(c.name, c.gpu, c.status) for c in doc.checks}
    results = json.loads((outcome.path / "results.json").read_text())
    assert (results["kind"], results["status"]) == ("burnin", "failed")
    assert json.loads((outcome.path / "dcgm.json").read_text())["version"] == "4.1.1"


def test_dcgmi_that_gives_nothing_falls_back_to_the_burn_and_says_so(tmp_path: Path) -> None:
    dcgmi = _fake_dcgmi(tmp_path, None, 255)
    outcome = run_burnin(
        BurninRequest(store=str(tmp_path / "runs"), duration_s=0.5, device="cpu"),
        dcgmi=str(dcgmi),
        gather=lambda: (None, None),
    )
    doc = outcome.doc
    assert doc.mode == "burn" and doc.checks[0].name == "dcgm" and doc.checks[0].status == "warn"
    assert "nv-hostengine" in doc.checks[0].detail
    assert "matmul" in doc.tests_finished and any("DCGM did not run" in n for n in doc.notes)


def test_cli_exit_1_on_a_dcgm_failure_with_dcgms_test_names(tmp_path: Path) -> None:
    _fake_dcgmi(tmp_path, STANDIN_4, 226)
    env = {"PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    result = CliRunner().invoke(
        cli, ["burnin", "--device", "cpu", "--dcgm-level", "3", "--store", str(tmp_path / "runs")], env=env
    )
    assert result.exit_code == 1, result.output
    assert (tmp_path / "argv").read_text().split()[:3] == ["diag", "-r", "3"]
    fail = next(line for line in result.output.splitlines() if line.startswith("FAIL"))
    assert "memory" in fail and "GPU1" in fail and "memory mismatch" in fail
    assert "dcgm: 4 passed, 1 warned, 1 failed, 1 skipped" in result.output


def test_the_corpus_readme_names_every_file() -> None:
    readme = (DCGM / "README.md").read_text()
    for path in DCGM.iterdir():
        if path.name != "README.md":
            assert path.name in readme, f"{path.name} has no provenance in the README"
