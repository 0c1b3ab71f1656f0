"""The roles' variable logic, judged by real Ansible with injected facts.

The requested stack is made concrete by svdops/provision/plan.py; what the roles make of it on a given
host (package names per distribution and driver branch, repository paths, NCCL builds, whether a
service may start, whether a conda environment is complete, which apt entries conflict) lives in task
files that only set facts or read files. Each test runs such a file through ansible-runner and
ansible-playbook against this machine over the local connection with `gather_facts: false`; a tiny
module (`inject_facts`, written below) sets the facts of the case: an Ubuntu 22.04/24.04/26.04 or
Debian 12 host, its kernel and architecture. One host per case, all cases of a test in one run. Nothing
here installs a package or starts a service; the repository-conflict test edits apt files in a folder
of its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.slow

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
ROLES = PLAYBOOKS / "roles"

INJECT = '''#!/usr/bin/python
from ansible.module_utils.basic import AnsibleModule
module = AnsibleModule(argument_spec={"facts": {"type": "dict", "required": True}})
module.exit_json(changed=False, ansible_facts=module.params["facts"])
'''


def host(distribution: str, version: str, kernel: str = "6.8.0-45-generic", arch: str = "x86_64") -> dict[str, str]:
    return {"distribution": distribution, "distribution_version": version,
            "distribution_major_version": version.split(".")[0], "kernel": kernel, "architecture": arch,
            "distribution_release": "x"}


UBUNTU2204, UBUNTU2404, UBUNTU2604 = host("Ubuntu", "22.04"), host("Ubuntu", "24.04"), host("Ubuntu", "26.04")
DEBIAN12 = host("Debian", "12", kernel="6.1.0-26-amd64")


def evaluate(tmp_path: Path, task_file: Path, cases: dict[str, tuple[dict[str, str], dict[str, Any]]],
             names: list[str]) -> dict[str, dict[str, Any]]:
    """Run `task_file` once per case (facts, variables) and return the variables `names` per case."""
    import ansible_runner

    # ansible-runner finds ansible-playbook on this process's PATH: the venv's own first
    bin_dir = str(Path(sys.executable).parent)
    if os.environ.get("PATH", "").split(os.pathsep)[0] != bin_dir:
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    (tmp_path / "library").mkdir(parents=True)
    (tmp_path / "runner").mkdir()
    (tmp_path / "library" / "inject_facts.py").write_text(INJECT)
    out = tmp_path / "out"
    out.mkdir()
    play = [{
        "hosts": "all", "gather_facts": False, "connection": "local",
        "roles": [{"role": "svdops"}],  # the defaults: every svdops_* variable
        "tasks": [
            {"name": "Inject the case's facts", "inject_facts": {"facts": "{{ case_facts }}"}},
            {"name": "Run the file", "ansible.builtin.include_tasks": str(task_file)},
            {"name": "Report", "ansible.builtin.copy": {
                "dest": f"{out}/{{{{ inventory_hostname }}}}.json",
                "content": "{{ dict(case_names | zip(query('vars', *case_names))) | to_json }}"}},
        ],
    }]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    inventory = {"all": {"hosts": {
        name: {"case_facts": facts, **variables, "ansible_python_interpreter": sys.executable}
        for name, (facts, variables) in cases.items()}, "vars": {"case_names": names}}}
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    result = ansible_runner.run(
        private_data_dir=str(tmp_path / "runner"), playbook=str(tmp_path / "play.yml"),
        inventory=str(tmp_path / "inventory.yml"), quiet=True, forks=8,
        envvars={"ANSIBLE_ROLES_PATH": str(ROLES), "ANSIBLE_LIBRARY": str(tmp_path / "library"),
                 "ANSIBLE_HOME": str(tmp_path / "ansible-home"), "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
                 "LC_ALL": "C.UTF-8"})
    stdout = (tmp_path / "runner" / "artifacts").rglob("stdout")
    assert result.status == "successful", "\n".join(p.read_text()[-3000:] for p in stdout)
    return {name: json.loads((out / f"{name}.json").read_text()) for name in cases}


# --- the driver ------------------------------------------------------------------------------------

DRIVER = ["svdops_cuda_repo_url", "nvidia_driver_scheme", "nvidia_driver_pinning", "nvidia_driver_install",
          "nvidia_driver_holds", "nvidia_driver_headers", "svdops_fabricmanager_package",
          "svdops_driver_version_package"]
NV = "https://developer.download.nvidia.com/compute/cuda/repos"


def test_driver_packages_in_both_schemes_on_every_target(tmp_path: Path) -> None:
    cases = {
        "u2204-580": (UBUNTU2204, {"svdops_driver_branch": "580"}),
        "u2404-590": (UBUNTU2404, {"svdops_driver_branch": "590"}),
        "u2604-620-prop": (UBUNTU2604, {"svdops_driver_branch": "620", "svdops_driver_flavor": "proprietary",
                                        "svdops_driver_version": "620.10.01"}),
        "d12-580": (DEBIAN12, {"svdops_driver_branch": "580"}),
        "d12-595": (DEBIAN12, {"svdops_driver_branch": "595"}),
        "u2404-arm-610": (host("Ubuntu", "24.04", arch="aarch64"), {"svdops_driver_branch": "610"}),
    }
    got = evaluate(tmp_path, ROLES / "nvidia_driver" / "tasks" / "packages.yml", cases, DRIVER)

    u580 = got["u2204-580"]
    assert u580["svdops_cuda_repo_url"] == f"{NV}/ubuntu2204/x86_64"
    assert u580["nvidia_driver_scheme"] == "numbered" and u580["nvidia_driver_pinning"] == []
    assert u580["nvidia_driver_install"] == ["nvidia-driver-580-open"]
    assert set(u580["nvidia_driver_holds"]) == {"nvidia-driver-580-open", "nvidia-utils-580", "libnvidia-compute-580",
                                                "nvidia-kernel-common-580", "nvidia-dkms-580-open"}
    assert u580["nvidia_driver_headers"] == ["linux-headers-generic"]
    assert u580["svdops_fabricmanager_package"] == "nvidia-fabricmanager-580"
    assert u580["svdops_driver_version_package"] == "libnvidia-compute-580"

    # from 590: the branch leaves the names and the pinning package selects it
    u590 = got["u2404-590"]
    assert u590["svdops_cuda_repo_url"] == f"{NV}/ubuntu2404/x86_64"
    assert u590["nvidia_driver_scheme"] == "pinning"
    assert u590["nvidia_driver_pinning"] == ["nvidia-driver-pinning-590"]
    # one name for every branch: the version names the branch (an installed 580 would satisfy "nvidia-open")
    assert u590["nvidia_driver_install"] == ["nvidia-open=590.*"]
    assert set(u590["nvidia_driver_holds"]) == {"nvidia-driver-pinning-590", "nvidia-open", "libnvidia-compute",
                                                "nvidia-dkms-open"}
    assert u590["svdops_fabricmanager_package"] == "nvidia-fabricmanager"

    u620 = got["u2604-620-prop"]
    assert u620["svdops_cuda_repo_url"] == f"{NV}/ubuntu2604/x86_64"
    assert u620["nvidia_driver_pinning"] == ["nvidia-driver-pinning-620"]
    assert u620["nvidia_driver_install"] == ["cuda-drivers=620.10.01-*"]
    assert "nvidia-dkms" in u620["nvidia_driver_holds"]

    # Debian 12: NVIDIA's debian12 repository, pinning scheme for every branch, Debian's package names
    for case, branch in (("d12-580", "580"), ("d12-595", "595")):
        d = got[case]
        assert d["svdops_cuda_repo_url"] == f"{NV}/debian12/x86_64"
        assert d["nvidia_driver_pinning"] == [f"nvidia-driver-pinning-{branch}"]
        assert d["nvidia_driver_install"] == [f"nvidia-open={branch}.*"]
        assert set(d["nvidia_driver_holds"]) == {f"nvidia-driver-pinning-{branch}", "nvidia-open", "libcuda1",
                                                 "nvidia-kernel-open-dkms"}
        assert d["nvidia_driver_headers"] == ["linux-headers-amd64"]
        assert d["svdops_driver_version_package"] == "libcuda1"

    assert got["u2404-arm-610"]["svdops_cuda_repo_url"] == f"{NV}/ubuntu2404/sbsa"
    assert got["u2404-arm-610"]["nvidia_driver_pinning"] == ["nvidia-driver-pinning-610"]


def test_a_branch_change_releases_every_driver_hold_off_the_wanted_branch(tmp_path: Path) -> None:
    """The release task's own expressions (read from apt.yml, not copied), on `apt-mark showhold | xargs
    dpkg-query` answers. Both pinning plans hold libcuda1 and nvidia-kernel-open-dkms: releasing only the
    names the new plan drops kept them held at 580, and apt refused nvidia-open=590.* (the VM's site run)."""
    apt = yaml.safe_load((ROLES / "nvidia_driver" / "tasks" / "apt.yml").read_text())
    release = next(t for t in apt if str(t.get("name", "")).startswith("Release holds"))
    probe = tmp_path / "release.yml"
    probe.write_text(yaml.safe_dump([{"name": "Evaluate", "ansible.builtin.set_fact": {
        "release": "{{ nvidia_driver_release }}"}, "vars": release["vars"]}]))
    plan590 = ["nvidia-driver-pinning-590", "nvidia-open", "libcuda1", "nvidia-kernel-open-dkms"]
    at580 = ["nvidia-driver-pinning-580 580.95.05-1", "nvidia-open 580.95.05-1", "libcuda1 580.95.05-1",
             "nvidia-kernel-open-dkms 580.95.05-1", "nvidia-fabricmanager 580.95.05-1", "libnccl2 2.27.7-1+cuda12.8"]
    at590 = [line.replace("580", "590").replace("590.95.05", "590.44.01") for line in at580]

    def case(lines: list[str], holds: list[str], branch: str,
             version: str = "") -> tuple[dict[str, str], dict[str, Any]]:
        return DEBIAN12, {"nvidia_driver_showhold": {"stdout_lines": lines}, "nvidia_driver_holds": holds,
                          "svdops_driver_branch": branch, "svdops_driver_version": version}

    got = evaluate(tmp_path, probe, {
        "580-to-590": case(at580, plan590, "590"),
        "steady-590": case(at590, plan590, "590"),
        "exact-version": case(at590, plan590, "590", "590.48.07"),
        "numbered-steady": (UBUNTU2204, {"nvidia_driver_showhold": {"stdout_lines": [
            "nvidia-driver-580-open 580.95.05-0ubuntu1", "libnvidia-compute-580 580.95.05-0ubuntu1"]},
            "nvidia_driver_holds": ["nvidia-driver-580-open", "libnvidia-compute-580"], "svdops_driver_branch": "580",
            "svdops_driver_version": ""}),
        "no-versions": case(["nvidia-open", "", "libcuda1 5801.2-1"], plan590, "580"),
    }, ["release"])
    assert got["580-to-590"]["release"] == ["nvidia-driver-pinning-580", "nvidia-open", "libcuda1",
                                            "nvidia-kernel-open-dkms"]
    assert got["steady-590"]["release"] == []  # a steady run stays changed=0
    assert got["exact-version"]["release"] == ["nvidia-open", "libcuda1", "nvidia-kernel-open-dkms"]
    assert got["numbered-steady"]["release"] == []
    # a line without a version is not judged; 5801.x is not branch 580
    assert got["no-versions"]["release"] == ["libcuda1"]


def test_signed_modules_follow_the_kernel_flavour(tmp_path: Path) -> None:
    cases = {
        "generic-580": (UBUNTU2204, {"svdops_driver_branch": "580", "svdops_driver_signed_modules": True}),
        "aws-595": (host("Ubuntu", "24.04", kernel="6.8.0-1015-aws"),
                    {"svdops_driver_branch": "595", "svdops_driver_signed_modules": True}),
        "hwe-580": (UBUNTU2204, {"svdops_driver_branch": "580", "svdops_driver_signed_modules": True,
                                 "svdops_kernel_flavour": "generic-hwe-22.04"}),
    }
    got = evaluate(tmp_path, ROLES / "nvidia_driver" / "tasks" / "packages.yml", cases, DRIVER)
    assert got["generic-580"]["nvidia_driver_install"] == ["nvidia-driver-580-open",
                                                           "linux-modules-nvidia-580-open-generic"]
    # Ubuntu's archive names signed modules by branch for every branch
    assert got["aws-595"]["nvidia_driver_install"] == ["nvidia-driver-595-open", "linux-modules-nvidia-595-open-aws"]
    assert got["hwe-580"]["nvidia_driver_install"][1] == "linux-modules-nvidia-580-open-generic-hwe-22.04"
    for case in got.values():
        assert not any(re.search(r"-\d+\.\d+\.\d+-", p) for p in case["nvidia_driver_install"])  # no one kernel's
        assert case["nvidia_driver_holds"] == []  # the module package must move with kernel updates
        assert case["nvidia_driver_headers"] == []


# --- NCCL ----------------------------------------------------------------------------------------------

def test_nccl_takes_the_build_for_the_hosts_cuda(tmp_path: Path) -> None:
    cases = {
        "newest-12.8": (UBUNTU2404, {"svdops_nccl_version": "*", "svdops_cuda_version": "12.8"}),
        "pinned-13.0": (DEBIAN12, {"svdops_nccl_version": "2.26.2", "svdops_cuda_version": "13.0"}),
    }
    got = evaluate(tmp_path, ROLES / "nccl" / "tasks" / "packages.yml", cases, ["nccl_packages", "nccl_holds"])
    assert got["newest-12.8"]["nccl_packages"] == ["libnccl2=*+cuda12.8", "libnccl-dev=*+cuda12.8"]
    assert got["pinned-13.0"]["nccl_packages"] == ["libnccl2=2.26.2-*+cuda13.0", "libnccl-dev=2.26.2-*+cuda13.0"]
    assert all(g["nccl_holds"] == ["libnccl2", "libnccl-dev"] for g in got.values())


# --- Fabric Manager and DCGM start only on the installed driver -------------------------------------

def test_services_wait_while_a_reboot_is_pending(tmp_path: Path) -> None:
    cases = {
        "none-loaded": (UBUNTU2404, {"nvidia_driver_state_loaded": "", "nvidia_driver_state_installed": "580.95.05"}),
        "stale": (UBUNTU2404, {"nvidia_driver_state_loaded": "580.95.05\n",
                               "nvidia_driver_state_installed": "590.48.01"}),
        "current": (UBUNTU2404, {"nvidia_driver_state_loaded": "590.48.01\n",
                                 "nvidia_driver_state_installed": "590.48.01\n"}),
    }
    got = evaluate(tmp_path, ROLES / "nvidia_driver" / "tasks" / "driver_ready.yml", cases,
                   ["nvidia_driver_ready", "nvidia_driver_ready_why"])
    assert got["none-loaded"]["nvidia_driver_ready"] is False
    assert got["stale"]["nvidia_driver_ready"] is False
    why = got["stale"]["nvidia_driver_ready_why"]
    assert "reboot pending: loaded nvidia module 580.95.05, installed 590.48.01" in why
    assert got["current"]["nvidia_driver_ready"] is True


def test_service_start_is_gated_on_the_driver_state() -> None:
    for path, service in ((ROLES / "fabricmanager" / "tasks" / "apt.yml", "nvidia-fabricmanager"),
                          (ROLES / "dcgm" / "tasks" / "main.yml", "nvidia-dcgm")):
        tasks = yaml.safe_load(path.read_text())
        names = [t.get("ansible.builtin.include_role", {}).get("tasks_from") for t in tasks]
        start = next(t for t in tasks if t.get("ansible.builtin.systemd_service", {}).get("name") == service)
        assert "driver_state" in names[:tasks.index(start)], path
        assert "nvidia_driver_ready" in start["ansible.builtin.systemd_service"]["state"], path


# --- the conda environment: complete only with the marker of what built it --------------------------

def test_a_half_built_environment_is_not_current(tmp_path: Path) -> None:
    def prefix(name: str, marker: str | None) -> dict[str, Any]:
        root = tmp_path / name
        (root / "svdops").mkdir(parents=True)
        spec = root / "svdops" / "svd.environment.yml"
        spec.write_text("dependencies: [python=3.12]\n")
        env = root / "envs" / "svd"
        (env / "bin").mkdir(parents=True)
        (env / "bin" / "python").write_text("")  # what a failed pip step leaves behind
        digest = hashlib.sha256(hashlib.sha256(spec.read_bytes()).hexdigest().encode()).hexdigest()
        if marker is not None:
            (env / ".svdops-complete").write_text((digest if marker == "right" else marker) + "\n")
        return {"conda_inputs": [str(spec)], "conda_env_prefix": str(env), "conda_marker_name": ".svdops-complete"}

    cases = {"no-marker": (UBUNTU2404, prefix("a", None)), "old-lock": (UBUNTU2404, prefix("b", "0" * 64)),
             "complete": (UBUNTU2404, prefix("c", "right")),
             "input-gone": (UBUNTU2404, {**prefix("d", "right"), "conda_inputs": [str(tmp_path / "gone.lock")]})}
    got = evaluate(tmp_path / "run", ROLES / "conda" / "tasks" / "state.yml", cases, ["conda_env_current"])
    assert {k: v["conda_env_current"] for k, v in got.items()} == {
        "no-marker": False, "old-lock": False, "complete": True, "input-gone": False}


# --- NVIDIA's repository -------------------------------------------------------------------------------

def test_older_nvidia_entries_are_disabled_and_reported(tmp_path: Path) -> None:
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    ours = apt / "sources.list.d" / "cuda-ubuntu2204-x86_64.list"
    ours.write_text(f"deb [signed-by=/usr/share/keyrings/cuda-archive-keyring.gpg] {NV}/ubuntu2204/x86_64/ /\n")
    old = apt / "sources.list.d" / "cuda.list"  # an older guide's entry, no signed-by (apt-key)
    old.write_text(f"deb {NV}/ubuntu2204/x86_64/ /\n")
    ml = apt / "sources.list.d" / "nvidia-ml.sources"
    ml.write_text("Types: deb\nURIs: https://developer.download.nvidia.com/compute/machine-learning/repos/ubuntu2004/x86_64/\n"
                  "Suites: /\nSigned-By: /etc/apt/trusted.gpg.d/old.gpg\n")
    other = apt / "sources.list.d" / "docker.list"
    other.write_text("deb https://download.docker.com/linux/ubuntu jammy stable\n")
    (apt / "sources.list").write_text("deb http://archive.ubuntu.com/ubuntu jammy main\n"
                                      f"deb {NV}/ubuntu2004/x86_64 /\n")
    defaults = yaml.safe_load((ROLES / "cuda_repo" / "defaults" / "main.yml").read_text())
    cases = {"h": (UBUNTU2204, {"cuda_repo_apt_dir": str(apt),
                                "cuda_repo_nvidia_pattern": defaults["cuda_repo_nvidia_pattern"]})}
    got = evaluate(tmp_path / "run", ROLES / "cuda_repo" / "tasks" / "conflicts.yml", cases, ["cuda_repo_conflicts"])
    assert got["h"]["cuda_repo_conflicts"] == [str(old), str(ml)]
    assert not old.exists() and not ml.exists()
    assert old.with_name("cuda.list.svdops.disabled").exists()
    assert ml.with_name("nvidia-ml.sources.svdops.disabled").exists()
    assert ours.exists() and other.exists()
    lines = (apt / "sources.list").read_text().splitlines()
    assert lines[0] == "deb http://archive.ubuntu.com/ubuntu jammy main"
    assert lines[1].startswith("# disabled by svdops provision") and NV in lines[1]
    stdout = next((tmp_path / "run" / "runner" / "artifacts").rglob("stdout")).read_text()
    assert "disabled older entries for NVIDIA's repository" in stdout and "cuda.list (now .svdops.disabled)" in stdout


def test_lists_are_refreshed_unless_apt_already_knows_the_repository(tmp_path: Path) -> None:
    policy = subprocess.run(["apt-cache", "policy"], capture_output=True, text=True, check=False).stdout
    known = re.search(r"\s(https?://\S+)\s", policy)
    if known is None:
        pytest.skip("apt-cache policy lists no repository on this machine")
    unchanged = {"cuda_repo_sources": {"changed": False}, "cuda_repo_keyring_installed": {"changed": False}}
    cases = {
        "known-unchanged": (DEBIAN12, {**unchanged, "svdops_cuda_repo_url": known.group(1)}),
        "unknown": (DEBIAN12, {**unchanged, "svdops_cuda_repo_url": "http://127.0.0.1:9/cuda/repos/debian12/x86_64"}),
        "sources-changed": (DEBIAN12, {**unchanged, "cuda_repo_sources": {"changed": True},
                                       "svdops_cuda_repo_url": known.group(1)}),
        "conflict-disabled": (DEBIAN12, {**unchanged, "cuda_repo_conflicts": ["/etc/apt/sources.list.d/cuda.list"],
                                         "svdops_cuda_repo_url": known.group(1)}),
    }
    got = evaluate(tmp_path, ROLES / "cuda_repo" / "tasks" / "refresh_decision.yml", cases, ["cuda_repo_refresh"])
    assert {k: v["cuda_repo_refresh"] for k, v in got.items()} == {
        "known-unchanged": False, "unknown": True, "sources-changed": True, "conflict-disabled": True}
