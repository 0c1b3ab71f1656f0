"""`svdops facts`, `check`, `profiles` through click's CliRunner, on real recorded hosts."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from svdops import __version__
from svdops.cli.main import COMMANDS, cli
from svdops.host.facts import HostFacts
from tests.support.paths import HOSTS, PROFILES, recorded_host
from tests.support.profiles import GPU_ONLY

H100 = recorded_host("h100-sxm-ubuntu2404")
BROKEN_PROFILES = PROFILES


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), prog_name="svdops")
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_version() -> None:
    code, out, _ = run("--version")
    assert code == 0
    assert __version__ in out


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help(command: str) -> None:
    code, out, _ = run(command, "--help")
    assert code == 0, out
    assert "Usage: svdops" in out and command in out


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_script(shell: str) -> None:
    code, out, _ = run("completion", shell)
    assert code == 0
    assert "_SVDOPS_COMPLETE" in out


def test_facts_json_from_recorded_h100_round_trips() -> None:
    code, out, _ = run("facts", "--from-dir", str(H100), "--json")
    assert code == 0
    data = json.loads(out)
    assert data["schema"] == "svdops.facts/1"
    assert [g["name"] for g in data["gpus"]] == ["NVIDIA H100 80GB HBM3"]
    assert data["gpus"][0]["memory_total_mib"] == 81559
    assert data["driver"]["userspace_version"] == "580.159.04"
    facts = HostFacts.from_dict(data)
    assert facts.to_dict() == data


def test_facts_table_names_gaps() -> None:
    code, out, _ = run("facts", "--from-dir", str(H100))
    assert code == 0
    assert "NVIDIA H100 80GB HBM3" in out
    assert "580.159.04" in out


def test_facts_missing_folder_is_bad_input(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    code, _, err = run("facts", "--from-dir", str(missing))
    assert code == 2
    assert str(missing) in err and "Traceback" not in err


def test_facts_on_this_machine_without_gpu() -> None:
    code, out, _ = run("facts", "--json", "--no-nvml")
    assert code == 0
    facts = HostFacts.from_json(out)
    assert facts.source == "local"
    assert facts.memory.total_mib and facts.memory.total_mib > 0
    if not facts.gpus:
        assert facts.note_for("gpus")


def test_bundle_replays_to_the_same_facts(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    code, live_out, _ = run("facts", "--json", "--no-nvml", "--bundle", str(bundle))
    assert code == 0
    assert (bundle / "meminfo.txt").is_file()
    code, replay_out, _ = run("facts", "--json", "--from-dir", str(bundle))
    assert code == 0
    live, replay = json.loads(live_out), json.loads(replay_out)
    for volatile in ("collected_at", "source"):
        live.pop(volatile), replay.pop(volatile)
    assert live == replay


# What each recorded host gets against the default profile (svd-host), read off its recording by hand:
# none of them has diffusers installed, so every one fails python.package[diffusers]; the rest is what
# the scenario is named after; a driver branch past NVIDIA's end of life warns (driver.branch). A required
# check that could not look is unknown (it fails the exit code too): a recording without the Python version
# cannot say whether transformers and today's pipeline run, one whose nvidia-smi failed cannot size the GPUs,
# and without /proc/modules or mokutil, nouveau and Secure Boot are unknown where no nvidia module drives
# the GPUs (where one does, they skip: neither can be what holds the GPUs).
# (exit code, failed checks, warned checks, unknown checks)
Verdict = tuple[int, set[str], set[str], set[str]]
SVD_HOST_VERDICTS: dict[str, Verdict] = {
    "h100-sxm-ubuntu2404": (1, {"python.package[diffusers]"}, set(), set()),
    "h100-x8-nvlink": (1, {"python.package[diffusers]"}, set(), set()),
    "h200-ubuntu2404": (1, {"python.package[diffusers]"}, set(), set()),
    "degraded-raid6-nvme-raid0": (1, {"python.package[diffusers]", "storage.md-health[md1]"}, set(), set()),
    "driver-535-cuda-12-8-wheel": (1, {"python.package[diffusers]"}, {"driver.branch", "driver.torch-cuda-compat"},
                                   {"python.transformers-compat", "svd.pipeline-stack"}),
    # the loaded 570 module is what runs: it cannot run CUDA 13.0 (nvcc, torch cu130); the fix is the reboot
    "kernel-module-mismatch": (1, {"python.package[diffusers]", "driver.reboot-required", "gpu.count",
                                   "driver.cuda-toolkit-compat", "driver.torch-cuda-compat"}, set(),
                               {"driver.nouveau", "driver.secure-boot", "svd.vram[svd-xt-25f]"}),
    "no-gpu": (1, {"python.package[diffusers]", "driver.present", "gpu.count", "torch.cuda-build"}, set(),
               {"driver.nouveau", "driver.secure-boot", "svd.vram[svd-xt-25f]"}),
    # both cards train x8 of x16 (the slots are split x8/x8, see its README): health.pcie warns, as it should
    "pcie-pair-rtx4090": (1, {"python.package[diffusers]"}, {"driver.branch", "driver.persistence",
                                                              "health.pcie[GPU0]", "health.pcie[GPU1]"}, set()),
    "secure-boot-nouveau": (1, {"python.package[diffusers]", "driver.nouveau", "driver.secure-boot", "gpu.count"},
                            set(), {"driver.reboot-required", "python.transformers-compat", "svd.pipeline-stack",
                                    "svd.vram[svd-xt-25f]"}),
    # the recording has no `nvidia-smi nvlink -s` while topo -m shows NV12: the link state of an NVLink host is
    # required by svd-host and could not be read (its kernel log is not recorded either: optional, skipped)
    "seed-2023-ubuntu2004-a100x2": (1, {"python.package[diffusers]", "svd.pipeline-stack"}, {"driver.branch"},
                                    {"health.nvlink"}),
}

# A profile that leaves the Python stack out: the healthy recordings pass it (exit 0, warnings allowed),
# the broken ones still fail on what is broken. transformers-compat stays a warning here: the profile does
# not require transformers, so its Python version not being recorded is not a required look.
GPU_ONLY_VERDICTS: dict[str, Verdict] = {
    "h100-sxm-ubuntu2404": (0, set(), set(), set()),
    "h100-x8-nvlink": (0, set(), set(), set()),
    "h200-ubuntu2404": (0, set(), set(), set()),
    "seed-2023-ubuntu2004-a100x2": (0, set(), {"driver.branch"}, set()),
    "pcie-pair-rtx4090": (0, set(), {"driver.branch", "driver.persistence"}, set()),
    "driver-535-cuda-12-8-wheel": (0, set(),
                                   {"driver.branch", "driver.torch-cuda-compat", "python.transformers-compat"}, set()),
    "degraded-raid6-nvme-raid0": (1, {"storage.md-health[md1]"}, set(), set()),
    "kernel-module-mismatch": (1, {"driver.reboot-required", "gpu.count", "driver.cuda-toolkit-compat",
                                   "driver.torch-cuda-compat"}, set(), {"driver.nouveau", "driver.secure-boot"}),
    "no-gpu": (1, {"driver.present", "gpu.count", "torch.cuda-build"}, set(), {"driver.nouveau", "driver.secure-boot"}),
    "secure-boot-nouveau": (1, {"driver.nouveau", "driver.secure-boot", "gpu.count"}, {"python.transformers-compat"},
                            {"driver.reboot-required"}),
}


def test_every_recorded_host_has_its_verdicts_pinned() -> None:
    recorded = {p.name for p in HOSTS.iterdir() if p.is_dir()}
    assert set(SVD_HOST_VERDICTS) == recorded == set(GPU_ONLY_VERDICTS)


@pytest.fixture(scope="module")
def gpu_only(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("profiles") / "gpu-only.yaml"
    path.write_text(GPU_ONLY)
    return str(path)


def _verdicts(profile: str, host: str) -> tuple[Verdict, dict[str, Any]]:
    code, out, _ = run("check", "--from-dir", str(HOSTS / host), "--profile", profile, "--format", "json")
    data = json.loads(out)

    def keys(status: str) -> set[str]:
        return {f["key"] for f in data["findings"] if f["status"] == status}

    return (code, keys("fail"), keys("warn"), keys("unknown")), data


@pytest.mark.parametrize("host", sorted(SVD_HOST_VERDICTS))
def test_check_json_verdicts_and_exit_code_per_recorded_host(host: str) -> None:
    verdict, data = _verdicts("svd-host", host)
    assert verdict == SVD_HOST_VERDICTS[host]
    _, failed, warned, unknown = verdict
    assert data["schema"] == "svdops.check/1" and data["profile"] == "svd-host"
    assert data["failed"] is True
    assert (data["summary"]["fail"], data["summary"]["warn"], data["summary"]["unknown"]) == (
        len(failed), len(warned), len(unknown))
    assert sum(data["summary"].values()) == len(data["findings"])
    assert all(f["hint"] for f in data["findings"] if f["status"] == "fail")


@pytest.mark.parametrize("host", sorted(GPU_ONLY_VERDICTS))
def test_a_host_that_only_warns_exits_0(host: str, gpu_only: str) -> None:
    verdict, data = _verdicts(gpu_only, host)
    assert verdict == GPU_ONLY_VERDICTS[host]
    assert data["failed"] is (verdict[0] == 1)


@pytest.mark.parametrize("fmt", ["table", "junit"])
@pytest.mark.parametrize(("host", "exit_code"), [("h200-ubuntu2404", 0), ("pcie-pair-rtx4090", 0), ("no-gpu", 1)])
def test_every_format_exits_the_same(fmt: str, host: str, exit_code: int, gpu_only: str) -> None:
    code, _, _ = run("check", "--from-dir", str(HOSTS / host), "--profile", gpu_only, "--format", fmt)
    assert code == exit_code


def test_check_seed_profile_fails_on_modern_host_and_says_what_to_change() -> None:
    code, out, _ = run("check", "--from-dir", str(H100), "--profile", "seed-2023", "--format", "json")
    assert code == 1
    data = json.loads(out)
    failed = [f for f in data["findings"] if f["status"] == "fail"]
    assert failed
    assert all(f["hint"] for f in failed)


def test_check_junit_is_well_formed(tmp_path: Path) -> None:
    target = tmp_path / "out" / "check.xml"
    code, _, err = run("check", "--from-dir", str(H100), "--profile", "seed-2023", "--format", "junit",
                       "-o", str(target))
    assert code == 1
    assert str(target) in err
    root = ET.parse(target).getroot()
    suite = root.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert len(cases) == int(suite.get("tests", "-1")) > 0
    assert len([c for c in cases if c.find("failure") is not None]) == int(suite.get("failures", "-1")) > 0


def test_check_table_shows_fixes() -> None:
    code, out, _ = run("check", "--from-dir", str(H100), "--profile", "seed-2023")
    assert code == 1
    assert "How to fix" in out
    assert "failed" in out


def test_check_saved_snapshot_matches_recorded_folder(tmp_path: Path) -> None:
    snap = tmp_path / "facts.json"
    assert run("facts", "--from-dir", str(H100), "--json", "-o", str(snap))[0] == 0
    _, via_dir, _ = run("check", "--from-dir", str(H100), "--format", "json")
    _, via_snap, _ = run("check", "--facts", str(snap), "--format", "json")
    assert json.loads(via_dir)["findings"] == json.loads(via_snap)["findings"]


@pytest.mark.parametrize(
    "content, expected",
    [
        ("", "not valid JSON"),
        ("{not json", "not valid JSON"),
        ('{"schema": "svdops.facts/1", "hostname": 3}', "hostname"),
        ('{"schema": "something-else/1"}', "not an svdops facts snapshot"),
        ('[1, 2, 3]', "JSON object"),
        ('{"schema": "svdops.facts/1", "hostname": "h", "collected_at": "t", "source": "s", "gpus": [{"index": "x"}]}',
         "gpus[0]"),
    ],
)
def test_check_corrupt_snapshot_is_bad_input(tmp_path: Path, content: str, expected: str) -> None:
    snap = tmp_path / "facts.json"
    snap.write_text(content)
    code, _, err = run("check", "--facts", str(snap))
    assert code == 2, err
    assert expected in err and str(snap) in err
    assert "Traceback" not in err


def test_check_missing_snapshot(tmp_path: Path) -> None:
    code, _, err = run("check", "--facts", str(tmp_path / "none.json"))
    assert code == 2
    assert "not found" in err and "hint:" in err


def test_check_both_sources_is_usage_error(tmp_path: Path) -> None:
    snap = tmp_path / "f.json"
    snap.write_text("{}")
    code, _, err = run("check", "--facts", str(snap), "--from-dir", str(H100))
    assert code == 2
    assert "either --from-dir or --facts" in err


def test_check_unknown_profile() -> None:
    code, _, err = run("check", "--from-dir", str(H100), "--profile", "no-such-profile")
    assert code == 2
    assert "no-such-profile" in err and "Traceback" not in err


def _broken_profiles() -> list[str]:
    """Profiles under tests/fixtures/profiles that are meant to fail (the valid ones say so on line 1)."""
    names = [p.name for p in sorted(BROKEN_PROFILES.glob("*.yaml")) if not p.read_text().startswith("# valid")]
    return names or ["(none)"]


@pytest.mark.parametrize("broken", _broken_profiles())
def test_check_broken_profile_names_the_file(broken: str) -> None:
    if broken == "(none)":
        pytest.fail("no broken profiles under tests/fixtures/profiles")
    path = BROKEN_PROFILES / broken
    code, _, err = run("check", "--from-dir", str(H100), "--profile", str(path))
    assert code == 2, err
    assert path.name in err and "Traceback" not in err


def test_profiles_list_and_show() -> None:
    code, out, _ = run("profiles")
    assert code == 0
    for name in ("svd-host", "seed-2023", "workstation-24gb", "a100-80gb-x8-nvlink", "h100-sxm-x8-nvlink", "ci-cpu"):
        assert name in out
    code, out, _ = run("profiles", "show", "seed-2023")
    assert code == 0
    assert "seed-2023" in out


def test_output_to_unwritable_place_is_bad_input(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run("facts", "--from-dir", str(H100), "--json", "-o", str(blocker / "sub" / "out.json"))
    assert code == 2
    assert "cannot write output" in err


# --- bad input: a path that is not there is exit 2, never a green check ----------------------------------


def _bad_input(code: int, err: str, *parts: str) -> None:
    assert code == 2, err
    assert all(part in err for part in parts), err
    assert "Traceback" not in err and "internal error" not in err


@pytest.mark.parametrize("command", [("check", "-p", "ci-cpu"), ("check",), ("facts", "--json")])
def test_a_python_path_that_does_not_exist_is_bad_input(command: tuple[str, ...]) -> None:
    # before: exit 0 for ci-cpu, every python.* check a mere warning
    code, _, err = run(*command, "--python", "/nonexistent/bin/python", "--no-nvml")
    _bad_input(code, err, "/nonexistent/bin/python", "no such interpreter", "hint:")


def test_a_python_path_that_is_not_an_executable_file_is_bad_input(tmp_path: Path) -> None:
    script = tmp_path / "python"
    script.write_text("#!/bin/sh\n")  # not executable
    for not_an_interpreter in (script, tmp_path):
        code, _, err = run("check", "-p", "ci-cpu", "--python", str(not_an_interpreter), "--no-nvml")
        _bad_input(code, err, str(not_an_interpreter), "not an executable file")


@pytest.mark.parametrize("option", ["--from-dir", "--facts", "--inventory"])
def test_a_source_that_does_not_exist_is_bad_input(option: str, tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    code, _, err = run("check", "-p", "ci-cpu", option, str(missing))
    _bad_input(code, err, str(missing))


@pytest.mark.parametrize("content", [{}, {"hostname.txt": "gpu01\n"}, {"notes.md": "my bundle\n"}])
def test_a_from_dir_with_nothing_recorded_is_bad_input(content: dict[str, str], tmp_path: Path) -> None:
    # before: exit 0 for ci-cpu: nothing known about the host, so nothing failed
    for name, text in content.items():
        (tmp_path / name).write_text(text)
    for command in (("check", "-p", "ci-cpu"), ("facts",)):
        code, _, err = run(*command, "--from-dir", str(tmp_path))
        _bad_input(code, err, str(tmp_path), "holds no recorded outputs")


def _snapshot(host: str = "h100-sxm-ubuntu2404") -> dict[str, Any]:
    code, out, _ = run("facts", "--from-dir", str(HOSTS / host), "--json")
    assert code == 0
    data: dict[str, Any] = json.loads(out)
    return data


def test_a_snapshot_without_its_schema_key_is_bad_input(tmp_path: Path) -> None:
    data = _snapshot()
    del data["schema"]
    snap = tmp_path / "facts.json"
    snap.write_text(json.dumps(data))
    code, _, err = run("check", "--facts", str(snap))
    _bad_input(code, err, str(snap), "schema")


@pytest.mark.parametrize("text", [
    "[" * 100_000 + "]" * 100_000,  # the reproduction: RecursionError, exit 70 before
    '{"schema": "svdops.facts/1", "hostname": "h", "collected_at": "t", "source": "s", "os": '
    + '{"x": ' * 500 + "1" + "}" * 501,  # parses, but nests far deeper than any snapshot
], ids=["deep-lists", "deep-objects-inside-a-snapshot"])
def test_a_snapshot_nested_absurdly_deep_is_bad_input(text: str, tmp_path: Path) -> None:
    snap = tmp_path / "deep.json"
    snap.write_text(text)
    code, _, err = run("check", "-p", "ci-cpu", "--facts", str(snap))
    _bad_input(code, err, str(snap), "nested too deeply")
    assert "RecursionError" not in err


IMPOSSIBLE: list[tuple[str, str, str]] = [
    # (field, value as JSON text, the name the error gives)
    ("memory.total_mib", "-1", "memory.total_mib"),
    ("memory.total_mib", str(10**30 // 2**20), "memory.total_mib"),  # 10^30 bytes of RAM
    ("memory.total_mib", "NaN", "NaN"),
    ("gpus.0.power_draw_w", "Infinity", "Infinity"),
    ("gpus.0.temperature_c", str(10**9), "gpus[0].temperature_c"),
    ("gpus.0.memory_total_mib", "-81559", "gpus[0].memory_total_mib"),
    ("topology.gpu_count", "3000000", "topology.gpu_count"),
    ("storage.block_devices.1.size_bytes", str(10**30), "storage.block_devices[1].size_bytes"),
    ("gpus", "[" + ",".join(['{"index": 0, "name": "x"}'] * 2000) + "]", "gpus"),  # GPU count in the thousands
    ("memory.total_mib", "1" * 5000, "memory.total_mib"),  # more digits than Python converts
]


@pytest.mark.parametrize(("field", "value", "named"), IMPOSSIBLE, ids=[f"{f}={v[:12]}" for f, v, _ in IMPOSSIBLE])
def test_impossible_numbers_in_a_snapshot_are_bad_input_naming_the_field(field: str, value: str, named: str,
                                                                          tmp_path: Path) -> None:
    data = _snapshot()
    *parents, last = field.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[int(last) if last.isdigit() else last] = "@VALUE@"
    snap = tmp_path / "facts.json"
    snap.write_text(json.dumps(data).replace('"@VALUE@"', value))
    code, _, err = run("check", "--facts", str(snap))
    _bad_input(code, err, str(snap), named)


# --- UNKNOWN: a required check that could not look is not a pass ----------------------------------------

# The driver-535 recording has no Python version (python-version.txt was not recorded): a profile that
# requires one cannot be satisfied by it, nor failed.
NO_PYTHON_VERSION = HOSTS / "driver-535-cuda-12-8-wheel"
PYTHON_REQUIRED = GPU_ONLY + 'python:\n  version: ">=3.11"\n'


@pytest.fixture()
def python_required(tmp_path: Path) -> str:
    path = tmp_path / "python-required.yaml"
    path.write_text(PYTHON_REQUIRED)
    return str(path)


def test_a_required_check_that_could_not_look_is_unknown_and_fails(python_required: str) -> None:
    code, out, _ = run("check", "--from-dir", str(NO_PYTHON_VERSION), "-p", python_required, "--format", "json")
    assert code == 1  # before: exit 0, python.version a warning
    data = json.loads(out)
    unknown = [f for f in data["findings"] if f["status"] == "unknown"]
    assert [f["key"] for f in unknown] == ["python.version"]
    assert "not available" in unknown[0]["actual"] and "was not recorded" in unknown[0]["actual"]
    assert data["summary"]["unknown"] == 1 and data["summary"]["fail"] == 0
    assert data["failed"] is True and data["allow_unknown"] is False


def test_allow_unknown_reports_unknown_but_exits_0(python_required: str) -> None:
    code, out, _ = run("check", "--from-dir", str(NO_PYTHON_VERSION), "-p", python_required, "--format", "json",
                       "--allow-unknown")
    assert code == 0
    data = json.loads(out)
    assert data["summary"]["unknown"] == 1 and data["failed"] is False and data["allow_unknown"] is True


def test_allow_unknown_never_hides_a_failure(gpu_only: str) -> None:
    code, _, _ = run("check", "--from-dir", str(HOSTS / "no-gpu"), "-p", gpu_only, "--allow-unknown")
    assert code == 1


def test_the_table_shows_unknown_as_its_own_status(python_required: str) -> None:
    code, out, _ = run("check", "--from-dir", str(NO_PYTHON_VERSION), "-p", python_required)
    assert code == 1
    assert "UNKNOWN" in out and "python.version" in out
    assert "0 failed, 1 unknown" in out


@pytest.mark.parametrize(("allow", "exit_code"), [(False, 1), (True, 0)])
def test_junit_unknown_is_a_failure_or_with_allow_unknown_a_skip(python_required: str, allow: bool,
                                                                 exit_code: int) -> None:
    code, out, _ = run("check", "--from-dir", str(NO_PYTHON_VERSION), "-p", python_required, "--format", "junit",
                       *(["--allow-unknown"] if allow else []))
    assert code == exit_code
    root = ET.fromstring(out)
    suite = root.find("testsuite")
    assert suite is not None
    case = next(c for c in suite.findall("testcase") if c.get("name", "").startswith("python.version:"))
    failure, skipped = case.find("failure"), case.find("skipped")
    if allow:
        assert failure is None and skipped is not None
        assert "was not recorded" in skipped.get("message", "")
        assert (suite.get("failures"), root.get("failures")) == ("0", "0")
    else:
        assert skipped is None and failure is not None and failure.get("type") == "svdops.unknown"
        assert "was not recorded" in failure.get("message", "")
        assert (suite.get("failures"), root.get("failures")) == ("1", "1")


def test_an_optional_check_that_could_not_look_is_skipped(tmp_path: Path) -> None:
    profile = tmp_path / "python-optional.yaml"
    profile.write_text(PYTHON_REQUIRED + "optional: [python.version]\n")
    code, out, _ = run("check", "--from-dir", str(NO_PYTHON_VERSION), "-p", str(profile), "--format", "json")
    assert code == 0
    finding = next(f for f in json.loads(out)["findings"] if f["id"] == "python.version")
    assert finding["status"] == "skip" and "optional in profile python-optional" in finding["actual"]


def test_an_unknown_optional_id_is_bad_input(tmp_path: Path) -> None:
    profile = tmp_path / "typo.yaml"
    profile.write_text(GPU_ONLY + "optional: [python.verison]\n")
    code, _, err = run("check", "--from-dir", str(H100), "-p", str(profile))
    _bad_input(code, err, "typo.yaml: optional[0]", "python.verison", "did you mean 'python.version'")


def test_md_array_line_counts_working_spare_and_failed_devices() -> None:
    # real mdstat outputs (tests/fixtures/corpus/mdstat): raid5 [3/2] with sdc1 failed; raid6 [6/4] being
    # reshaped with two spares; raid5 with one spare (pr185_1)
    import io

    from rich.console import Console

    from svdops.cli.render import facts_table
    from svdops.host.facts import StorageFacts
    from svdops.host.probe.storage import parse_mdstat

    corpus = Path(__file__).resolve().parents[1] / "fixtures" / "corpus" / "mdstat"

    def md_lines(name: str) -> list[str]:
        facts = HostFacts("corpus", "2026-06-01T00:00:00Z", "recorded:corpus",
                          storage=StorageFacts(md_arrays=parse_mdstat((corpus / name).read_text())))
        buffer = io.StringIO()
        facts_table(facts, Console(file=buffer, width=200, no_color=True))
        return [ln for ln in buffer.getvalue().splitlines() if ln.startswith("md array")]

    assert md_lines("check_raid__mdstat-failed") == [
        "md array md0: raid5 [3/2], 2 working, 0 spare, 1 failed (sdc1), DEGRADED"]
    assert md_lines("check_raid__issue43_reshape") == [
        "md array md0: raid6 [6/4], 4 working, 2 spare, 0 failed, DEGRADED"]
    # recovering two disks: mdstat lists six, four are in sync
    assert md_lines("check_raid__issue43_recovery") == [
        "md array md0: raid6 [6/4], 4 working, 2 rebuilding, 0 spare, 0 failed, DEGRADED"]
