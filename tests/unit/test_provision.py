"""svdops.provision without Ansible: the plan a profile makes, its validation, the extra vars, the recap."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from click.testing import CliRunner

from svdops.cli.main import cli
from svdops.errors import BadInputError
from svdops.findings import Status
from svdops.judge.profiles import load_profile
from svdops.provision import plan as provision_plan
from svdops.provision import run as provision_run
from svdops.versions import Version


def profile(tmp_path: Path, body: str, name: str = "p") -> provision_run.Profile:  # type: ignore[name-defined]
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"description: test profile\n{body}")
    return load_profile(str(path))


# (case, profile body, options, failing finding ids, warned finding ids)
CASES = [
    ("h100 defaults", "extends: h100-sxm-x8-nvlink\n", {}, set(), set()),
    ("driver too old for CUDA 13", "extends: h100-sxm-x8-nvlink\n", {"driver_branch": 535},
     {"provision.driver.cuda", "provision.driver.torch"}, {"provision.driver.branch"}),
    ("unknown driver branch", "extends: h100-sxm-x8-nvlink\n", {"driver_branch": 600}, {"provision.driver.branch"},
     set()),
    ("legacy branch has no open modules",
     "extends: svd-host\ncuda: {toolkit: '11.4'}\npython: {torch_cuda: '11.8', packages: {torch: '2.7'}}\n",
     {"driver_branch": 470, "driver_flavor": "open"}, {"provision.driver.branch"}, {"provision.driver.torch"}),
    ("Blackwell needs the open modules", "extends: svd-host\n", {"gpu": "B200", "driver_flavor": "proprietary"},
     {"provision.driver.flavor"}, set()),
    ("Volta cannot use the open modules", "extends: svd-host\ncuda: {toolkit: '12.8'}\n",
     {"gpu": "V100 SXM2 32GB", "driver_flavor": "open"}, {"provision.driver.flavor"}, set()),
    ("CUDA 13 dropped Volta", "extends: svd-host\npython: {torch_cuda: '12.6'}\n",
     {"gpu": "V100 SXM2 32GB", "cuda": Version.parse("13.0")}, {"provision.cuda.gpu"}, set()),
    ("no torch wheel for that CUDA", "extends: svd-host\npython: {torch_cuda: '11.8'}\n", {},
     {"provision.torch.variant"}, set()),
    ("torch too new for the Python", "extends: svd-host\npython: {version: '3.8', packages: {torch: '2.11'}}\n", {},
     {"provision.torch.python"}, set()),
    ("CUDA without driver data", "extends: svd-host\n", {"cuda": Version.parse("12.7")}, {"provision.cuda.known"},
     set()),
    ("pinned driver outside the branch",
     "extends: svd-host\ndriver: {version: '570.133.20'}\ncuda: {toolkit: '12.8'}\npython: {torch_cuda: '12.8'}\n",
     {"driver_branch": 580}, {"provision.driver.version"}, set()),
    ("wheel on minor-version compatibility only",
     "extends: svd-host\ncuda: {toolkit: '12.4'}\npython: {torch_cuda: '12.8', packages: {torch: '2.7'}}\n",
     {"driver_branch": 550}, set(), {"provision.driver.torch", "provision.driver.branch"}),
    ("R595 is a branch svdops knows", "extends: h100-sxm-x8-nvlink\n", {"driver_branch": 595}, set(), set()),
    ("R620 runs CUDA 13.3",
     "extends: svd-host\ncuda: {toolkit: '13.3'}\npython: {torch_cuda: '13.2', packages: {torch: '2.14'}}\n",
     {"driver_branch": 620}, set(), set()),
    ("CUDA 13.2 needs R595", "extends: svd-host\ncuda: {toolkit: '13.2'}\n", {"driver_branch": 580},
     {"provision.driver.cuda"}, set()),
    ("CUDA newer than the knowledge", "extends: svd-host\n", {"cuda": Version.parse("13.4")},
     {"provision.cuda.known"}, set()),
    ("an ended branch warns and names where to move", "extends: svd-host\ncuda: {toolkit: '12.8'}\n"
     "python: {torch_cuda: '12.8', packages: {torch: '2.7'}}\n", {"driver_branch": 570}, set(),
     {"provision.driver.branch"}),
    ("wheel without code for the GPU", "extends: svd-host\npython: {torch_cuda: '12.6', packages: {torch: '2.6'}}\n",
     {"gpu": "RTX 5090"}, {"provision.torch.arch"}, set()),
]


@pytest.mark.parametrize(("body", "options", "fails", "warns"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_validation_of_requested_combinations(tmp_path: Path, body: str, options: dict, fails: set, warns: set) -> None:  # type: ignore[type-arg]
    plan = provision_plan.plan_for(profile(tmp_path, body), provision_plan.PlanOptions(**options))
    findings = provision_plan.validate_plan(plan)
    assert {f.id for f in findings if f.status is Status.FAIL} == fails
    assert {f.id for f in findings if f.status is Status.WARN} == warns
    for finding in findings:
        if finding.status is not Status.PASS:
            assert finding.hint, finding
    if fails:
        with pytest.raises(provision_plan.ProvisionPlanError) as raised:
            provision_plan.check_plan(plan)
        assert raised.value.exit_code == 2
        assert all(f in str(raised.value) for f in fails)


def test_an_ended_branch_names_the_supported_one_to_move_to() -> None:
    plan = provision_plan.plan_for(load_profile("h100-sxm-x8-nvlink"), provision_plan.PlanOptions(driver_branch=535))
    branch = next(f for f in provision_plan.validate_plan(plan) if f.id == "provision.driver.branch")
    assert branch.status is Status.WARN and "end of life June 2026" in branch.actual
    assert branch.hint.startswith("--driver-branch 580 ")


def test_the_hint_names_the_branch_check_would_install(tmp_path: Path) -> None:
    plan = provision_plan.plan_for(load_profile("h100-sxm-x8-nvlink"), provision_plan.PlanOptions(driver_branch=535))
    (cuda,) = [f for f in provision_plan.validate_plan(plan) if f.id == "provision.driver.cuda"]
    assert cuda.hint.startswith("--driver-branch 580")
    assert "sudo apt-get install -y nvidia-driver-580-open && sudo reboot" in cuda.hint


@pytest.mark.parametrize(("name", "expected"), [
    ("h100-sxm-x8-nvlink", {"driver_branch": 580, "driver_flavor": "open", "cuda": "13.0", "torch": "2.11",
                            "torch_variant": "cu130", "python": "3.12", "gpu": "H100 SXM"}),
    ("ci-cpu", {"torch_variant": "cpu", "python": "3.11", "gpu": None}),
    # the 2023 stack: Python 3.8 caps torch at 2.4, the V100 among its models rules out the open modules
    ("seed-2023", {"driver_branch": 580, "driver_flavor": "proprietary", "cuda": "11.3", "cudnn": "8", "nccl": "*",
                   "torch": "2.4", "torch_variant": "cu124", "python": "3.8", "gpu": "V100 SXM2 32GB"}),
])
def test_plans_of_the_shipped_profiles(name: str, expected: dict) -> None:  # type: ignore[type-arg]
    summary = provision_plan.plan_summary(provision_plan.plan_for(load_profile(name)))
    assert {k: summary[k] for k in expected} == expected


def test_seed_profile_lets_pip_pick_a_diffusers_for_python_3_8() -> None:
    plan = provision_plan.plan_for(load_profile("seed-2023"))
    assert plan.pip_packages[:2] == ("torch==2.4.*", "diffusers>=0.24.0")
    assert any("diffusers" in note for note in plan.notes)


def test_pins_become_exact_versions(tmp_path: Path) -> None:
    plan = provision_plan.plan_for(profile(tmp_path, "extends: h100-sxm-x8-nvlink\ndriver: {version: '570.133.20'}\n"
                                           "cuda: {toolkit: '12.8', cudnn: '9.8.0', nccl: '2.26.2'}\n"
                                           "python: {torch_cuda: '12.8', packages: {diffusers: '0.35.1'}}\n"))
    assert (plan.driver_branch, str(plan.driver_version), str(plan.cuda), plan.cudnn, plan.nccl, plan.torch_tag) == \
        (570, "570.133.20", "12.8", "9.8.0", "2.26.2", "cu128")
    assert "diffusers==0.35.1" in plan.pip_packages
    assert not [f for f in provision_plan.validate_plan(plan) if f.status is Status.FAIL]


def test_minimums_install_the_newest_of_their_major(tmp_path: Path) -> None:
    plan = provision_plan.plan_for(profile(tmp_path, "extends: svd-host\ncuda: {cudnn: '>=9.1', nccl: true}\n"))
    assert (plan.cudnn, plan.nccl) == ("9", "*")


def test_extra_vars_carry_the_profile(tmp_path: Path) -> None:
    prof = load_profile("seed-2023")
    request = provision_run.ProvisionRequest(profile=prof, hosts=("h",), allow_reboot=True,
                                    wipe=("/dev/disk/by-id/nvme-X",), extra_vars={"svdops_check_mirrors": False})
    out = provision_run.extra_vars(provision_plan.plan_for(prof), request)
    assert out["svdops_driver_branch"] == "580" and out["svdops_driver_flavor"] == "proprietary"
    assert out["svdops_cuda_version"] == "11.3" and out["svdops_cudnn_version"] == "8"
    assert out["svdops_torch_variant"] == "cu124"
    assert out["svdops_torch_index_url"].endswith("/whl/cu124")
    assert out["svdops_supported_releases"] == ["20.04"]
    assert out["svdops_storage_scratch_level"] == "raid0" and out["svdops_storage_scratch_min_devices"] == 2
    assert out["svdops_storage_data_level"] == "raid6" and out["svdops_storage_data_min_devices"] == 3
    assert out["svdops_allow_reboot"] is True and out["svdops_storage_wipe"] == ["/dev/disk/by-id/nvme-X"]
    assert out["svdops_profile_name"] == "seed-2023"
    assert out["svdops_profile_files"] == [str(prof.source.resolve())]
    assert out["svdops_check_mirrors"] is False


def test_extra_vars_cannot_bypass_validation() -> None:
    prof = load_profile("h100-sxm-x8-nvlink")
    request = provision_run.ProvisionRequest(profile=prof, hosts=("h",), extra_vars={"svdops_driver_branch": "535"})
    with pytest.raises(BadInputError, match="svdops_driver_branch") as raised:
        provision_run.extra_vars(provision_plan.plan_for(prof), request)
    assert "--driver-branch" in str(raised.value.hint)


def test_parse_extra_vars(tmp_path: Path) -> None:
    file = tmp_path / "vars.yml"
    file.write_text("svdops_storage_scratch_devices: [/dev/disk/by-id/nvme-A]\n")
    out = provision_run.parse_extra_vars(["a=1", "b=[x, y]", "c=", f"@{file}", "d=text with: colon"])
    assert out == {"a": 1, "b": ["x", "y"], "c": "", "svdops_storage_scratch_devices": ["/dev/disk/by-id/nvme-A"],
                   "d": "text with: colon"}
    for bad in ("novalue", "1x=2", f"@{tmp_path / 'missing.yml'}"):
        with pytest.raises(BadInputError):
            provision_run.parse_extra_vars([bad])


def test_run_folders_are_fresh_and_named_by_utc_time_and_profile(tmp_path: Path) -> None:
    now = dt.datetime(2026, 11, 26, 12, 1, 2, tzinfo=dt.UTC)
    first = provision_run.new_run_dir("h100 x8", tmp_path, now)
    second = provision_run.new_run_dir("h100 x8", tmp_path, now)
    assert first.name == "20261126T120102Z-h100_x8" and second.name == "20261126T120102Z-h100_x8-2"


def test_events_become_progress_and_a_recap() -> None:
    seen: list[provision_run.ProgressEvent] = []
    sink = provision_run._EventSink(seen.append)
    events = [
        {"event": "playbook_on_task_start", "event_data": {"task": "Install the driver", "role": "nvidia_driver"}},
        {"event": "runner_on_ok", "event_data": {"host": "a", "task": "Install the driver", "role": "nvidia_driver",
                                                  "res": {"changed": True}}},
        {"event": "runner_on_ok", "event_data": {"host": "a", "task": "Say", "task_action": "ansible.builtin.debug",
                                                  "res": {"msg": "skipped: not Ubuntu"}}},
        {"event": "runner_on_failed", "event_data": {"host": "b", "task": "Check", "res": {"msg": "boom"}}},
        {"event": "runner_on_failed", "event_data": {"host": "b", "task": "Ignored", "ignore_errors": True,
                                                      "res": {"msg": "fine"}}},
        {"event": "runner_on_unreachable", "event_data": {"host": "c", "task": "Gathering Facts",
                                                          "res": {"msg": "Connection refused"}}},
        {"event": "playbook_on_stats", "event_data": {
            "ok": {"a": 5, "b": 1}, "changed": {"a": 1}, "failures": {"b": 1}, "dark": {"c": 1}, "skipped": {"a": 2},
            "processed": {"a": 1, "b": 1, "c": 1},
            "artifact_data": {"svdops_plan": {"a": {"cuda_toolkit": {"install": ["cuda-toolkit-12-8"]}}},
                              "svdops_reboot_required": {"a": True}}}},
    ]
    for event in events:
        assert sink(event) is True
    kinds = [(e.kind, e.host) for e in seen]
    assert kinds == [("task", ""), ("changed", "a"), ("ok", "a"), ("message", "a"), ("failed", "b"),
                     ("unreachable", "c")]
    assert seen[0].task == "nvidia_driver : Install the driver"
    recap = provision_run._recap(sink.stats)
    assert (recap["a"].ok, recap["a"].changed, recap["a"].skipped) == (5, 1, 2)
    assert recap["b"].failed == 1 and recap["c"].unreachable == 1
    result = provision_run.ProvisionResult(Path("."), "failed", 2, False, recap, sink.failures,
                                  sink.artifact_data["svdops_plan"], {"a": True}, [])
    assert result.exit_code == provision_run.EXIT_UNREACHABLE
    recap["c"].unreachable = 0
    assert result.exit_code == provision_run.EXIT_FAILED
    recap["b"].failed = 0
    result = provision_run.ProvisionResult(Path("."), "successful", 0, False, recap, [], {}, {}, [])
    assert result.exit_code == provision_run.EXIT_OK


def test_playbooks_are_found_in_the_source_tree(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert (provision_run.playbooks_dir() / "site.yml").is_file()
    monkeypatch.setenv(provision_run.PLAYBOOKS_ENV, str(tmp_path))
    assert provision_run.playbooks_dir() != tmp_path  # no site.yml there: the next candidate wins
    (tmp_path / "site.yml").write_text("---\n")
    assert provision_run.playbooks_dir() == tmp_path.resolve()


@pytest.mark.parametrize(("args", "message"), [
    ([], "no hosts"),
    (["--host", "h", "--tags", "driver"], "unknown tag 'driver'"),
    (["--host", "h", "--driver-branch", "535", "-p", "h100-sxm-x8-nvlink"], "provision.driver.cuda"),
    (["--host", "h", "--cuda", "abc"], "expected a CUDA version"),
    (["--host", "h", "-e", "svdops_cuda_version=12.8"], "validated before the run"),
])
def test_cli_usage_errors_exit_2_before_anything_runs(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner(env={"SVDOPS_RUNS_DIR": str(tmp_path / "runs")}).invoke(cli, ["provision", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "runs").exists()
