"""svdops.provision without Ansible: the plan a profile makes, its validation, the extra vars, the recap."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shlex
import stat
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from svdops.cli.main import cli
from svdops.errors import BadInputError, RunFailedError
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
    out = provision_run.extra_vars(provision_plan.plan_for(prof), request, {"h": ("/dev/disk/by-id/nvme-X",)})
    assert out["svdops_driver_branch"] == "580" and out["svdops_driver_flavor"] == "proprietary"
    assert out["svdops_cuda_version"] == "11.3" and out["svdops_cudnn_version"] == "8"
    assert out["svdops_torch_variant"] == "cu124"
    assert out["svdops_torch_index_url"].endswith("/whl/cu124")
    assert out["svdops_supported_releases"] == ["20.04"]
    assert out["svdops_storage_scratch_level"] == "raid0" and out["svdops_storage_scratch_min_devices"] == 2
    assert out["svdops_storage_data_level"] == "raid6" and out["svdops_storage_data_min_devices"] == 3
    assert out["svdops_allow_reboot"] is True
    assert out["svdops_storage_wipe_by_host"] == {"h": ["/dev/disk/by-id/nvme-X"]}
    assert "svdops_storage_wipe" not in out  # a host var of the inventory: -e would beat it for every host
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


# --- secrets -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [
    "ansible_become_password", "ansible_become_pass", "ansible_ssh_pass", "ansible_password", "MY_API_TOKEN",
    "HF_TOKEN", "GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "apiKey", "APIKey", "db_passwd", "dbPassword",
    "vault_id", "vault", "registry_credentials", "smtp-credential", "ssh.key", "gpg_keys", "AWS_ACCESS_KEY_ID",
    "svdops_mirror_apitoken", "wifi_passphrase", "client_secret", "token_value", "svdops_secrets",
])
def test_secret_looking_names(name: str) -> None:
    assert provision_run.is_secret_name(name)


@pytest.mark.parametrize("name", [
    # keyring, keyboard, monkey, tokenizer: "key" and "token" are words of a name, not substrings
    "svdops_cuda_keyring_version", "keyboard_layout", "monkey_patch", "svdops_tokenizer_cache",
    # where a secret is kept, not the secret
    "ansible_ssh_private_key_file", "ANSIBLE_VAULT_PASSWORD_FILE", "ssh_key_path", "SSH_AUTH_SOCK",
    "svdops_check_mirrors", "svdops_pip_index_url", "PWD", "bypass_proxy", "compass_heading", "",
    # a secret word inside a name about something else
    "ANSIBLE_HOST_KEY_CHECKING", "ansible_host_key_checking", "token_url", "secret_name", "vault_addr",
    "password_min_length",
])
def test_names_that_are_not_secrets(name: str) -> None:
    assert not provision_run.is_secret_name(name)


def test_redaction_reaches_nested_values_and_url_passwords() -> None:
    secrets: set[str] = set()
    out = provision_run.redact({
        "ansible_become_password": "S3cr3t", "db": {"password": 1234, "host": "db1"},
        "svdops_pip_index_url": "https://ci:p%40ss-w0rd@mirror.example/simple", "tokens_seen": ["a"],
        "apikeys": {"x": "k-1"}, "mirrors": [{"name": "m", "token": ["t1", "t2"]}], "flag": True,
    }, secrets)
    assert out == {
        "ansible_become_password": "<redacted>", "db": {"password": "<redacted>", "host": "db1"},
        "svdops_pip_index_url": "https://ci:<redacted>@mirror.example/simple", "tokens_seen": ["a"],
        "apikeys": {"x": "k-1"}, "mirrors": [{"name": "m", "token": "<redacted>"}], "flag": True,
    }
    assert secrets == {"S3cr3t", "1234", "p%40ss-w0rd", "t1", "t2"}
    assert provision_run.mask("failed: S3cr3t and t1", secrets) == "failed: <redacted> and <redacted>"


def test_the_scrub_finds_secrets_in_any_file_and_any_form(tmp_path: Path) -> None:
    secret = 'pa"ss word\\1'
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "event.json").write_text(json.dumps({"cmd": f"echo {secret}"}))
    (tmp_path / "stdout").write_bytes(f"x {secret} y".encode() + b"\xff")
    (tmp_path / "cmd").write_text(shlex.quote(secret))
    (tmp_path / "short").write_text("42 is not searched for, nor True")
    changed = provision_run.scrub_run_folder(tmp_path, {secret, "42", "True"})
    assert sorted(p.name for p in changed) == ["cmd", "event.json", "stdout"]
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert b"ss word" not in path.read_bytes(), path
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
        else:
            assert stat.S_IMODE(path.stat().st_mode) == 0o700
    assert (tmp_path / "short").read_text() == "42 is not searched for, nor True"


def test_run_folders_are_private_from_creation(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        run = provision_run.new_run_dir("p", tmp_path / "runs")
    finally:
        os.umask(old)
    assert stat.S_IMODE(run.stat().st_mode) == 0o700


# --- storage: wipes and names --------------------------------------------------------------------------

DISK_A = "/dev/disk/by-id/nvme-SAMSUNG_MZQL23T8HCLS-00A07_S64HNE0T500123"
DISK_B = "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"
HOSTS = {"gpu01": {"svdops_storage_scratch_devices": [DISK_A]},
         "gpu02": {"svdops_storage_scratch_devices": [DISK_A], "svdops_storage_data_devices": [DISK_B]}}


def test_wipes_are_per_host_and_exact() -> None:
    assert provision_plan.wipes_by_host([f"gpu02={DISK_B}", f"gpu02={DISK_A}", f"gpu02={DISK_B}"], HOSTS) == \
        {"gpu02": (DISK_B, DISK_A)}
    # one host: the host may be left out
    assert provision_plan.wipes_by_host([DISK_A], {"gpu01": HOSTS["gpu01"]}) == {"gpu01": (DISK_A,)}
    assert provision_plan.wipes_by_host([], HOSTS) == {}


@pytest.mark.parametrize(("item", "message"), [
    (DISK_A, "several hosts: say which one"),  # one bare path no longer unlocks a disk on every host
    ("gpu01=vdz", "not a /dev/disk/by-id/ path"),
    ("gpu01=/dev/nvme0n1", "not a /dev/disk/by-id/ path"),
    ("gpu01=/dev/disk/by-id/../../nvme0n1", "characters udev never puts"),
    ("gpu01=/dev/disk/by-id/nvme-X;reboot", "characters udev never puts"),
    ("gpu01=/dev/disk/by-id/nvme X", "characters udev never puts"),
    (f"gpu03={DISK_A}", "'gpu03' is not a host of this run"),
    (f"gpu01={DISK_B}", "in no disk allowlist of gpu01"),
    (f"gpu01={DISK_A}-part1", "in no disk allowlist of gpu01"),
])
def test_wipes_that_name_nothing_exactly_are_refused(item: str, message: str) -> None:
    with pytest.raises(BadInputError, match=re.escape(message)) as raised:
        provision_plan.wipes_by_host([item], HOSTS)
    assert raised.value.exit_code == 2 and raised.value.where == f"--wipe {item}"


@pytest.mark.parametrize("variables", [
    {}, {"svdops_storage_scratch_name": "md0", "svdops_storage_scratch_mount": "/mnt/scratch"},
    {"svdops_storage_data_name": "bulk_01", "svdops_storage_data_mount": "/var/lib/docker",
     "svdops_storage_data_devices": [DISK_A, DISK_B], "svdops_storage_wipe": [DISK_B]},
])
def test_storage_variables_that_are_fine(variables: dict) -> None:  # type: ignore[type-arg]
    provision_plan.check_storage_vars(variables, where="x")


@pytest.mark.parametrize(("variables", "message"), [
    ({"svdops_storage_scratch_name": "/dev/md/scratch"}, "svdops_storage_scratch_name: '/dev/md/scratch'"),
    ({"svdops_storage_scratch_name": "s p"}, "not an md array name"),
    ({"svdops_storage_scratch_name": "$(reboot)"}, "not an md array name"),
    ({"svdops_storage_scratch_name": ".."}, "not an md array name"),
    ({"svdops_storage_data_name": "x" * 33}, "not an md array name"),
    ({"svdops_storage_scratch_mount": "/"}, "holds the system"),
    ({"svdops_storage_scratch_mount": "/boot"}, "holds the system"),
    ({"svdops_storage_scratch_mount": "/usr/local"}, "holds the system"),
    ({"svdops_storage_data_mount": "/var"}, "holds the system"),
    ({"svdops_storage_data_mount": "/data/../etc"}, "not a plain absolute path"),
    ({"svdops_storage_data_mount": "data"}, "not a plain absolute path"),
    ({"svdops_storage_data_mount": "/mnt/a b"}, "not a plain absolute path"),
    ({"svdops_storage_data_mount": "/mnt/x;rm -rf /"}, "not a plain absolute path"),
    ({"svdops_storage_data_mount": "/scratch\n"}, "not a plain absolute path"),
    ({"svdops_storage_data_mount": "/data/"}, "not a plain absolute path"),
    ({"svdops_storage_data_mount": 5}, "not a plain absolute path"),
    ({"svdops_storage_data_mount": "/scratch"}, "both '/scratch'"),
    ({"svdops_storage_scratch_name": "data"}, "both 'data'"),
    ({"svdops_storage_scratch_devices": ["/dev/nvme0n1"]}, "svdops_storage_scratch_devices: '/dev/nvme0n1'"),
    ({"svdops_storage_scratch_devices": "/dev/disk/by-id/x"}, "expected a list"),
    ({"svdops_storage_wipe": ["vdz"]}, "svdops_storage_wipe: 'vdz' is not a /dev/disk/by-id/ path"),
])
def test_storage_variables_are_checked_before_ansible(variables: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(BadInputError, match=re.escape(message)) as raised:
        provision_plan.check_storage_vars(variables, where="hosts.ini: host gpu01")
    assert raised.value.exit_code == 2 and raised.value.where == "hosts.ini: host gpu01"


@pytest.mark.parametrize(("args", "message"), [
    (["--host", "h1", "--host", "h2", "--wipe", DISK_A], "several hosts: say which one the disk is on"),
    (["--host", "h1", "--wipe", "vdz"], "not a /dev/disk/by-id/ path"),
    (["--host", "h1", "--wipe", "h9=" + DISK_A], "'h9' is not a host of this run"),
    (["--host", "h1", "-e", "svdops_storage_scratch_mount=/"], "holds the system"),
])
def test_cli_storage_errors_exit_2_before_anything_runs(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner(env={"SVDOPS_RUNS_DIR": str(tmp_path / "runs")}).invoke(
        cli, ["provision", "-e", f"svdops_storage_scratch_devices=[{DISK_A}]", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "runs").exists()


def test_inventory_host_vars_are_checked_before_ansible(tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {
        "gpu01": {"svdops_storage_scratch_devices": [DISK_A]},
        "gpu02": {"svdops_storage_scratch_devices": [DISK_A], "svdops_storage_scratch_mount": "/mnt/$(reboot)"},
    }}}))
    result = CliRunner(env={"SVDOPS_RUNS_DIR": str(tmp_path / "runs")}).invoke(
        cli, ["provision", "--inventory", str(inventory), "--wipe", f"gpu01={DISK_A}"])
    assert result.exit_code == 2, result.output
    assert "host gpu02" in result.output and "svdops_storage_scratch_mount" in result.output
    assert not (tmp_path / "runs").exists()


# --- issue 14: the requested stack made concrete for the roles -----------------------------------------

@pytest.mark.parametrize(("branch", "known"), [(580, True), (590, True), (595, True), (610, True), (620, True),
                                               (600, False), (630, False)])
def test_driver_branches_580_to_620_are_planned_from_the_knowledge_base(tmp_path: Path, branch: int,
                                                                        known: bool) -> None:
    prof = load_profile("h100-sxm-x8-nvlink")
    plan = provision_plan.plan_for(prof, provision_plan.PlanOptions(driver_branch=branch))
    failed = {f.id for f in provision_plan.validate_plan(plan) if f.status is Status.FAIL}
    assert ("provision.driver.branch" not in failed) is known
    if known:
        out = provision_run.extra_vars(plan, provision_run.ProvisionRequest(profile=prof, hosts=("h",)))
        assert out["svdops_driver_branch"] == str(branch)  # the roles pick the naming scheme from it


def test_svdops_is_never_installed_by_index_name(tmp_path: Path) -> None:
    prof = load_profile("h100-sxm-x8-nvlink")
    out = provision_run.extra_vars(provision_plan.plan_for(prof), provision_run.ProvisionRequest(profile=prof,
                                                                                                  hosts=("h",)))
    assert "svdops_package_spec" not in out  # was svdops==0.1.0: anyone can register that name on PyPI
    assert provision_run.conda_role_runs(provision_run.ProvisionRequest(profile=prof, hosts=("h",)))
    assert not provision_run.conda_role_runs(provision_run.ProvisionRequest(profile=prof, hosts=("h",),
                                                                            tags=("nvidia_driver",)))
    assert not provision_run.conda_role_runs(provision_run.ProvisionRequest(profile=prof, hosts=("h",),
                                                                            skip_tags=("conda",)))


@pytest.mark.slow
def test_the_controller_builds_the_wheel_the_hosts_install(tmp_path: Path) -> None:
    import zipfile

    wheel = provision_run.build_svdops_wheel(tmp_path / "wheel")
    assert wheel.name.startswith("svdops-") and wheel.suffix == ".whl"
    names = zipfile.ZipFile(wheel).namelist()
    assert "svdops/provision/run.py" in names and "svdops/__init__.py" in names


@pytest.mark.slow
def test_the_same_sources_make_the_same_wheel(tmp_path: Path) -> None:
    # the conda role rebuilds the environment when the wheel's checksum changes: a wheel stamped with its
    # build time made every run rebuild it (the VM suite's second run was never changed=0)
    first = provision_run.build_svdops_wheel(tmp_path / "one").read_bytes()
    time.sleep(2.1)  # zip timestamps have two-second resolution
    assert provision_run.build_svdops_wheel(tmp_path / "two").read_bytes() == first


def test_a_repacked_wheel_does_not_carry_the_time_it_was_packed(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import zipfile

    first = provision_run._zip_entry("svdops/__init__.py")
    monkeypatch.setattr(time, "time", lambda: 2_000_000_000.0)
    assert provision_run._zip_entry("svdops/__init__.py").date_time == first.date_time == (1980, 1, 1, 0, 0, 0)
    with zipfile.ZipFile(tmp_path / "w.zip", "w") as zf:
        zf.writestr(provision_run._zip_entry("a"), "x")
    assert zipfile.ZipFile(tmp_path / "w.zip").getinfo("a").date_time == (1980, 1, 1, 0, 0, 0)


def test_neither_a_source_tree_nor_packable_files_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # without a checkout svdops packs its installed files again (tests/integration/test_packaging.py shows
    # that on a real wheel install); this venv's editable install has none to pack: said, with the way out
    monkeypatch.setattr(provision_run, "svdops_source_dir", lambda: None)
    with pytest.raises(RunFailedError, match="cannot be packed again") as info:
        provision_run.build_svdops_wheel(tmp_path / "wheel")
    assert "svdops_package_wheel" in (info.value.hint or "")
    assert list((tmp_path / "wheel").iterdir()) == []  # no half-written wheel left for the role to install
