"""The fleet check core (svdops.judge.fleet_check) and the documents a check writes (svdops.judge.documents).

Hosts are recorded folders behind RecordedShell, opened by a connector function, as in test_fleet.py:
the runner only sees Shells. SSH itself is tested against real sshd in tests/integration/test_fleet_ssh.py.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

from svdops.errors import BadInputError
from svdops.findings import Finding, Status
from svdops.host.facts import HostFacts
from svdops.host.fleet import FleetOptions, HostResult, HostStatus
from svdops.host.inventory import Target
from svdops.host.shell import Command, CommandResult, RecordedShell, Shell
from svdops.host.ssh import SshUnreachableError
from svdops.judge import documents, fleet_check
from svdops.judge.check import CheckReport, check_profile, run_check
from svdops.judge.fleet_check import FleetCheck, check_fleet, fleet_targets, gather_fleet, judge_fleet
from svdops.judge.profiles import Profile, load_profile
from tests.support.paths import HOSTS, REPO
from tests.support.profiles import GPU_ONLY

EXAMPLE_CHECKS = REPO / "reports" / "examples" / "checks"

# Judges the driver and GPUs only: the recorded H100/H200/A100 hosts pass it (none has diffusers,
# so under svd-host every recorded host fails), while no-gpu and kernel-module-mismatch fail it.


@pytest.fixture(scope="module")
def gpu_only(tmp_path_factory: pytest.TempPathFactory) -> Profile:
    path = tmp_path_factory.mktemp("profiles") / "gpu-only.yaml"
    path.write_text(GPU_ONLY)
    return load_profile(str(path))


@pytest.fixture(scope="module")
def svd_host() -> Profile:
    return check_profile(None)


class HungNvidiaSmi:
    """A recorded host whose nvidia-smi hangs: every nvidia-smi call comes back timed out, as over SSH."""

    def __init__(self, folder: Path, name: str) -> None:
        self.inner = RecordedShell(folder, name=name)
        self.name = name

    def run(self, command: Command) -> CommandResult:
        if command.argv[0] == "nvidia-smi":
            return CommandResult(command.key, command.argv, None, "", duration_s=2.0, timed_out=True)
        return self.inner.run(command)


def connector(hosts: dict[str, str | None]) -> Callable[[Target], Shell]:
    """name -> recorded host folder; None: the port is closed; a 'hung:' prefix: nvidia-smi hangs."""

    def connect(t: Target) -> Shell:
        folder = hosts[t.name]
        if folder is None:
            raise SshUnreachableError("connection refused on port 22", where=t.name, hint="is sshd running?")
        if folder.startswith("hung:"):
            return HungNvidiaSmi(HOSTS / folder.removeprefix("hung:"), t.name)
        return RecordedShell(HOSTS / folder, name=t.name)

    return connect


def check(hosts: dict[str, str | None], profile: Profile) -> FleetCheck:
    targets = [Target(name, "127.0.0.1", 22, "root") for name in hosts]
    return check_fleet(targets, FleetOptions(forks=4), profile, connect=connector(hosts))


# ---------------------------------------------------------------- selecting targets


def test_a_missing_identity_file_is_refused_before_any_connection(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="identity file not found") as err:
        fleet_targets(hosts=["gpu01"], identity=tmp_path / "id_missing")
    assert err.value.exit_code == 2 and str(tmp_path / "id_missing") in str(err.value)


def test_an_empty_selection_is_refused() -> None:
    with pytest.raises(BadInputError, match="no hosts to probe") as err:
        fleet_targets()
    assert err.value.hint


# ---------------------------------------------------------------- probing and judging


def test_every_answering_host_is_judged_against_the_one_loaded_profile(gpu_only: Profile) -> None:
    fleet = check({"gpu01": "h100-sxm-ubuntu2404", "gpu02": "h200-ubuntu2404", "gpu03": "no-gpu"}, gpu_only)
    assert [h.name for h in fleet.hosts] == ["gpu01", "gpu02", "gpu03"]
    assert all(h.report is not None and h.report.profile is gpu_only for h in fleet.hosts)
    assert [h.failed for h in fleet.hosts] == [False, False, True]
    no_gpu = fleet.hosts[2].report
    assert no_gpu is not None
    assert {f.key for f in no_gpu.findings if f.status is Status.FAIL} == {"driver.present", "gpu.count",
                                                                        "torch.cuda-build"}
    assert (fleet.checked, fleet.failed) == (3, 1)


def test_each_host_is_judged_as_it_answers_and_the_same_as_judging_after_all(
        gpu_only: Profile, monkeypatch: pytest.MonkeyPatch) -> None:
    hosts = {"gpu01": "h100-sxm-ubuntu2404", "gpu02": "no-gpu", "down": None, "hung": "hung:h200-ubuntu2404"}
    targets = [Target(name, "127.0.0.1", 22, "root") for name in hosts]
    judged: list[str] = []
    judged_when_seen: list[tuple[str, bool]] = []
    reports: dict[str, object] = {}

    def counting_run_check(facts: HostFacts, profile: Profile, **kwargs: bool) -> CheckReport:
        judged.append(facts.hostname)
        return run_check(facts, profile, **kwargs)

    monkeypatch.setattr(fleet_check, "run_check", counting_run_check)

    def seen(result: HostResult) -> None:  # the progress callback: a host that answered is judged by then
        judged_when_seen.append((result.target.name, result.ok))
        assert not result.ok or (result.facts is not None and judged[-1] == result.facts.hostname)

    fleet = check_fleet(targets, FleetOptions(forks=2), gpu_only, connect=connector(hosts), on_result=seen)
    later = judge_fleet(gather_fleet(targets, FleetOptions(forks=2), connect=connector(hosts)), gpu_only)
    assert sorted(judged_when_seen) == [("down", False), ("gpu01", True), ("gpu02", True), ("hung", False)]
    for now, after in zip(fleet.hosts, later.hosts, strict=True):
        reports[now.name] = now.report
        assert (now.report is None) == (after.report is None), now.name
        if now.report is not None and after.report is not None:
            assert now.report.findings == after.report.findings and now.report.failed == after.report.failed
    assert reports["down"] is None and reports["hung"] is None and reports["gpu01"] is not None
    assert fleet.exit_code == later.exit_code == 3
    assert len(judged) == 4  # two hosts answered, each judged once per way


@pytest.mark.parametrize(("hosts", "exit_code"), [
    ({"a": "h100-sxm-ubuntu2404", "b": "seed-2023-ubuntu2004-a100x2"}, 0),
    ({"a": "pcie-pair-rtx4090"}, 0),  # warnings (persistence mode off) never fail a host
    ({"a": "h100-sxm-ubuntu2404", "b": "kernel-module-mismatch"}, 1),
    ({"a": "h100-sxm-ubuntu2404", "down": None}, 3),
    ({"a": "no-gpu", "down": None}, 3),  # a host nobody looked at outranks a known failure
    ({"a": "h100-sxm-ubuntu2404", "hung": "hung:h200-ubuntu2404"}, 3),
])
def test_exit_code(gpu_only: Profile, hosts: dict[str, str | None], exit_code: int) -> None:
    assert check(hosts, gpu_only).exit_code == exit_code


def test_a_host_that_timed_out_is_not_judged_on_half_its_facts(gpu_only: Profile) -> None:
    fleet = check({"hung": "hung:h200-ubuntu2404", "ok": "h200-ubuntu2404"}, gpu_only)
    hung, ok = fleet.hosts
    assert hung.probe.status is HostStatus.TIMEOUT and "timed out" in hung.probe.message
    assert hung.probe.facts is not None  # what did answer is kept for the facts document
    assert hung.report is None and not hung.failed
    assert ok.report is not None and not ok.failed
    assert (fleet.checked, fleet.tally.not_checked) == (1, 1)


def test_gather_fleet_exit_code_only_counts_unreachable_hosts() -> None:
    targets = [Target(n, "127.0.0.1", 22) for n in ("a", "b")]
    answered = gather_fleet(targets, FleetOptions(), connect=connector({"a": "no-gpu", "b": "h200-ubuntu2404"}))
    assert answered.exit_code == 0 and all(r.ok for r in answered.hosts)
    one_down = gather_fleet(targets, FleetOptions(), connect=connector({"a": "no-gpu", "b": None}))
    assert one_down.exit_code == 3 and one_down.tally.by_status["unreachable"] == 1


# ---------------------------------------------------------------- the check document


def test_check_document_of_a_recorded_host(svd_host: Profile) -> None:
    facts = run_check_on("h100-sxm-ubuntu2404", svd_host)
    doc = documents.check_document(facts)
    assert doc["schema"] == documents.CHECK_SCHEMA == "svdops.check/1"
    assert (doc["host"], doc["profile"], doc["failed"]) == ("vm", "svd-host", True)
    assert doc["profile_source"] == str(svd_host.source)
    # driver.branch: R580 is supported
    # health: memory, PCIe, Xid (dmesg recorded) and thermals pass; NVLink skips (one GPU, no NVLink)
    assert doc["summary"] == {"pass": 21, "warn": 0, "fail": 1, "skip": 3, "unknown": 0}
    failed = [f for f in doc["findings"] if f["status"] == "fail"]
    assert failed == [{"id": "python.package", "key": "python.package[diffusers]", "title": "Python package diffusers",
                       "status": "fail", "expected": "diffusers >=0.24", "actual": "not installed",
                       "hint": "/opt/torch/.venv/bin/python3 -m pip install 'diffusers>=0.24'",
                       "subject": "diffusers"}]
    assert HostFacts.from_dict(json.loads(documents.json_text(doc))["facts"]) == facts.facts


def run_check_on(host: str, profile: Profile) -> CheckReport:
    from svdops.host.probe.gather import gather_facts

    return run_check(gather_facts(RecordedShell(HOSTS / host)), profile)


@pytest.mark.parametrize("name", ["cpu-devbox.json", "h100-sxm-reference.json"])
def test_example_check_files_are_what_check_document_writes(name: str, svd_host: Profile) -> None:
    """The report reads these files: rebuilt from their own facts and findings, they come out byte for byte."""
    text = (EXAMPLE_CHECKS / name).read_text()
    doc = json.loads(text)
    findings = tuple(Finding(f["id"], f["title"], Status(f["status"]), f["expected"], f["actual"], f["hint"],
                             f["subject"]) for f in doc["findings"])
    profile = dataclasses.replace(svd_host, source=Path(doc["profile_source"]))
    report = CheckReport(HostFacts.from_dict(doc["facts"]), profile, findings)
    assert documents.json_text(documents.check_document(report)) == text


# ---------------------------------------------------------------- fleet documents


@pytest.fixture(scope="module")
def mixed(svd_host: Profile) -> FleetCheck:
    return check({"gpu01": "h100-sxm-ubuntu2404", "gpu02": "h200-ubuntu2404", "down": None}, svd_host)


def test_fleet_check_document(mixed: FleetCheck) -> None:
    doc = json.loads(documents.json_text(documents.fleet_check_document(mixed)))
    assert doc["schema"] == documents.FLEET_CHECK_SCHEMA == "svdops.fleet-check/1"
    assert (doc["profile"], doc["exit_code"]) == ("svd-host", 3)
    assert doc["summary"] == {"hosts": 3, "checked": 2, "failed": 2, "not_checked": 1,
                              "by_status": {"ok": 2, "unreachable": 1, "auth failed": 0, "host key unknown": 0,
                                            "host key changed": 0, "timeout": 0, "error": 0}}
    gpu01, _, down = doc["hosts"]
    assert (gpu01["name"], gpu01["address"], gpu01["port"], gpu01["user"], gpu01["status"]) == (
        "gpu01", "127.0.0.1", 22, "root", "ok")
    report = mixed.hosts[0].report
    assert report is not None
    # the single-host document, embedded as is
    assert gpu01["check"] == json.loads(documents.json_text(documents.check_document(report)))
    assert down["check"] is None and down["status"] == "unreachable"
    assert "refused" in down["message"] and down["hint"] == "is sshd running?"


def test_fleet_facts_document(mixed: FleetCheck) -> None:
    doc = documents.fleet_facts_document(gather_fleet(
        [h.probe.target for h in mixed.hosts], FleetOptions(),
        connect=connector({"gpu01": "h100-sxm-ubuntu2404", "gpu02": "h200-ubuntu2404", "down": None})))
    assert doc["schema"] == documents.FLEET_FACTS_SCHEMA == "svdops.fleet-facts/1"
    assert doc["summary"]["hosts"] == 3 and doc["summary"]["not_probed"] == 1
    assert [h["facts"] is not None for h in doc["hosts"]] == [True, True, False]
    assert doc["hosts"][1]["facts"]["gpus"][0]["name"] == "NVIDIA H200"


# ---------------------------------------------------------------- JUnit


# CI systems keep a test's history by classname and name: these must not change between releases.
H100_SVD_HOST_CASES = [
    ("svdops.os", "os.id: operating system"),
    ("svdops.driver", "driver.present: NVIDIA driver installed"),
    ("svdops.driver", "driver.branch: driver branch is supported by NVIDIA"),
    ("svdops.driver", "driver.reboot-required: loaded driver matches installed driver"),
    ("svdops.driver", "driver.nouveau: nouveau not loaded"),
    ("svdops.driver", "driver.secure-boot: Secure Boot and signed driver modules"),
    ("svdops.driver", "driver.persistence: persistence mode"),
    ("svdops.driver", "driver.cuda-toolkit-compat: driver supports the CUDA toolkit (nvcc)"),
    ("svdops.gpu", "gpu.count: number of GPUs"),
    ("svdops.cuda", "cuda.arch-support: CUDA toolkit still builds for the GPUs"),
    ("svdops.python", "python.package[diffusers]: Python package diffusers"),
    ("svdops.python", "python.package[torch]: Python package torch"),
    ("svdops.python", "python.package[transformers]: Python package transformers"),
    ("svdops.torch", "torch.cuda-build: torch build matches the host"),
    ("svdops.driver", "driver.torch-cuda-compat: driver supports torch's CUDA"),
    ("svdops.torch", "torch.arch-list: torch carries code for the GPUs"),
    ("svdops.python", "python.transformers-compat: transformers 5.17.0 has the Python and torch it needs"),
    ("svdops.svd", "svd.pipeline-stack: this stack can run today's SVD pipeline"),
]


def parse(text: str) -> ET.Element:
    declaration, body = text.split("\n", 1)
    assert declaration == '<?xml version="1.0" encoding="UTF-8"?>'
    return ET.fromstring(body)


def test_check_junit_names_and_verdicts(svd_host: Profile) -> None:
    report = run_check_on("h100-sxm-ubuntu2404", svd_host)
    root = parse(documents.junit_text(documents.check_junit(report)))
    # 20 software checks + 5 health checks (memory, PCIe, Xid, thermal pass; NVLink skips: one GPU, no NVLink)
    assert [root.get(a) for a in ("name", "tests", "failures", "skipped")] == ["svdops", "25", "1", "3"]
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "svdops check vm (svd-host)" and suite.get("timestamp") == report.facts.collected_at
    cases = suite.findall("testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases][:len(H100_SVD_HOST_CASES)] == H100_SVD_HOST_CASES
    failure = cases[10].find("failure")
    assert failure is not None and failure.get("message") == "expected diffusers >=0.24, got not installed"
    assert failure.text is not None and failure.text.endswith("fix: /opt/torch/.venv/bin/python3 -m pip install "
                                                              "'diffusers>=0.24'")
    assert [c.get("name", "").split(":")[0] for c in cases if c.find("skipped") is not None] == [
        "driver.nouveau", "driver.secure-boot", "health.nvlink"]


def test_fleet_junit_holds_the_single_host_suite_under_the_hosts_label(mixed: FleetCheck) -> None:
    root = parse(documents.junit_text(documents.fleet_junit(mixed)))
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["svdops check gpu01 (svd-host)", "svdops check gpu02 (svd-host)",
                                               "svdops check down"]
    # per checked host: diffusers missing (fail), and 2 unknowns: over the fleet path the recordings give no
    # Python version (python-version.txt was not recorded), which transformers and the SVD pipeline need
    assert (root.get("name"), root.get("tests"), root.get("failures"), root.get("errors")) == (
        "svdops fleet", str(25 + 25 + 1), str(2 * (1 + 2)), "1")
    report = mixed.hosts[0].report
    assert report is not None
    single = parse(documents.junit_text(documents.check_junit(report))).find("testsuite")
    assert single is not None
    single.set("name", "svdops check gpu01 (svd-host)")
    suites[0].tail = single.tail = None  # the whitespace after a suite depends on what follows it
    assert ET.tostring(suites[0]) == ET.tostring(single)
    error = suites[2].find("testcase/error")
    assert error is not None and error.get("type") == "svdops.unreachable"
    assert error.get("message", "").startswith("unreachable: connection refused")
    assert error.text == "ssh://root@127.0.0.1:22\nconnection refused on port 22\nfix: is sshd running?"


def test_hostile_host_labels_and_findings_stay_data(svd_host: Profile) -> None:
    label = 'gpu"><injected/>&amp;]]>'
    root = parse(documents.junit_text(documents.fleet_junit(check({label: None}, svd_host))))
    assert root.find(".//injected") is None
    suite = root.find("testsuite")
    assert suite is not None and suite.get("hostname") == label and suite.get("name") == f"svdops check {label}"
    # a control character from a host's output is not allowed in XML 1.0: without care the whole file is unreadable
    finding = Finding("x.y", "<b>&", Status.FAIL, "a\nb", 'gpu\x1b[31m"]]>')
    hostile = dataclasses.replace(run_check_on("no-gpu", svd_host), findings=(finding,))
    case = parse(documents.junit_text(documents.check_junit(hostile))).find("testsuite/testcase")
    assert case is not None and case.get("name") == "x.y: <b>&"
    failure = case.find("failure")
    assert failure is not None and failure.get("message") == 'expected a\nb, got gpu\\x1b[31m"]]>'
    assert json.loads(documents.json_text(documents.check_document(hostile)))["findings"][0]["actual"] == finding.actual


def test_junit_text_leaves_the_built_tree_as_it_was(mixed: FleetCheck) -> None:
    tree = documents.fleet_junit(mixed)
    before = copy.deepcopy(tree)
    documents.junit_text(tree)
    assert ET.tostring(tree) == ET.tostring(before)


# ---------------------------------------------------------------- unknown over the fleet


def _without_remote_python(tmp_path: Path) -> Path:
    """The H100 recording as a host answers when --python names an interpreter it does not have: every
    command run with that interpreter exits 127 (the path is on the remote side, so it cannot be refused
    locally as bad input)."""
    import shutil

    from svdops.host.probe.commands import ALL

    folder = tmp_path / "no-remote-python"
    shutil.copytree(HOSTS / "h100-sxm-ubuntu2404", folder)
    for command in ALL:
        if command.argv[0] == "python3":
            (folder / command.key).write_text("")
            (folder / f"{command.key}.err").write_text("sh: 1: /nonexistent/bin/python: not found\n")
            (folder / f"{command.key}.rc").write_text("127\n")
    for leftover in folder.glob("torch-env.txt*"):  # collect_env ran with the old interpreter
        leftover.unlink()
    return folder


def test_a_remote_interpreter_that_is_not_there_makes_python_checks_unknown(tmp_path: Path,
                                                                            svd_host: Profile) -> None:
    folder = _without_remote_python(tmp_path)
    targets = [Target("gpu01", "127.0.0.1", 22, "root")]
    options = FleetOptions(forks=1, python="/nonexistent/bin/python")
    fleet = check_fleet(targets, options, svd_host, connect=lambda t: RecordedShell(folder, name=t.name))
    report = fleet.hosts[0].report
    assert report is not None
    python = [f for f in report.findings if f.id in ("python.package", "svd.pipeline-stack")]
    # before: the packages warned and the host passed everything but diffusers "not installed"
    assert python and all(f.status is Status.UNKNOWN for f in python), python
    assert all("not available" in f.actual for f in python)
    assert fleet.exit_code == 1 and report.failed
    relaxed = check_fleet(targets, options, svd_host, connect=lambda t: RecordedShell(folder, name=t.name),
                          allow_unknown=True)
    assert relaxed.hosts[0].report is not None and relaxed.hosts[0].report.summary["unknown"] == len(python)
    assert relaxed.exit_code == 0  # nothing failed that was looked at
    suite = parse(documents.junit_text(documents.fleet_junit(fleet))).find("testsuite")
    assert suite is not None and suite.get("failures") == str(len(python))
    types = {c.find("failure").get("type") for c in suite.findall("testcase")  # type: ignore[union-attr]
             if c.find("failure") is not None}
    assert types == {"svdops.unknown"}


def test_a_fleet_document_is_one_host_per_line_and_the_same_json() -> None:
    document = {"schema": "x", "summary": {"hosts": 2, "by_status": {"ok": 2}},
                "hosts": [{"host": "gpu01", "facts": {"gpus": [{"name": "H100 \"SXM\"\n"}]}},
                          {"host": "gpu02", "check": None}]}
    text = documents.json_text(document)
    assert json.loads(text) == document and text.endswith("}\n")
    lines = text.splitlines()
    assert lines[0] == "{" and '  "schema": "x",' in lines and '    "hosts": 2,' in lines
    assert [line for line in lines if line.startswith("    {")] == [
        '    {"host": "gpu01", "facts": {"gpus": [{"name": "H100 \\"SXM\\"\\n"}]}},',
        '    {"host": "gpu02", "check": null}']
    # a fleet of none, and any other document, is indented throughout, as before
    assert documents.json_text({"hosts": []}) == '{\n  "hosts": []\n}\n'
