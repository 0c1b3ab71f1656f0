"""The roles' task files as parsed YAML: what runs how often, what reports a change, what a unit runs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[2] / "playbooks" / "roles"
SITE = ROLES.parent / "site.yml"


def tasks(role: str, name: str = "main.yml") -> list[dict]:  # type: ignore[type-arg]
    return yaml.safe_load((ROLES / role / "tasks" / name).read_text())


@pytest.mark.parametrize("role", ["cudnn", "nccl", "cuda_toolkit", "fabricmanager", "dcgm", "nvidia_driver",
                                  "cuda_repo", "conda", "preflight", "validate"])
def test_no_task_runs_twice(role: str) -> None:
    for path in sorted((ROLES / role / "tasks").glob("*.yml")):
        names = Counter(t["name"] for t in yaml.safe_load(path.read_text()))
        assert [n for n, c in names.items() if c > 1] == [], path
    if role in ("cudnn", "nccl"):  # each ran its install and hold blocks twice
        counted = ("ansible.builtin.apt", "ansible.builtin.dpkg_selections", "ansible.builtin.include_tasks")
        modules = Counter(k for t in tasks(role) for k in t if k in counted)
        assert all(c == 1 for c in modules.values()), (role, modules)


def test_the_initramfs_is_rebuilt_for_every_kernel() -> None:
    (handler,) = yaml.safe_load(SITE.read_text())[0]["handlers"]
    assert handler["ansible.builtin.command"] == "update-initramfs -u -k all"


def test_persistenced_runs_in_persistence_mode() -> None:
    dropin = (ROLES / "nvidia_driver" / "templates" / "persistenced.conf.j2").read_text()
    lines = [line for line in dropin.splitlines() if line.startswith("ExecStart=")]
    assert lines[0] == "ExecStart="  # clears the packaged --no-persistence-mode command
    assert "--persistence-mode" in lines[1] and "--no-persistence-mode" not in lines[1]
    apt = tasks("nvidia_driver", "apt.yml")
    dest = next(t["ansible.builtin.template"]["dest"] for t in apt if "ansible.builtin.template" in t)
    assert dest.startswith("/etc/systemd/system/nvidia-persistenced.service.d/") and dest.endswith(".conf")
    service = next(t["ansible.builtin.systemd_service"] for t in apt if "ansible.builtin.systemd_service" in t)
    assert "daemon_reload" in service and "restarted" in service["state"]


def test_the_cache_refresh_never_reports_a_change_and_has_no_hour_long_window() -> None:
    refresh = next(t for t in tasks("cuda_repo", "apt.yml") if t.get("ansible.builtin.apt", {}).get("update_cache"))
    assert refresh["changed_when"] is False
    assert "cache_valid_time" not in refresh["ansible.builtin.apt"]
    assert "cuda_repo_refresh | bool" in refresh["when"]


def test_a_newer_keyring_is_never_downgraded() -> None:
    apt = tasks("cuda_repo", "apt.yml")
    compare = next(t for t in apt if "compare-versions" in str(t.get("ansible.builtin.command", "")))
    assert compare["ansible.builtin.command"]["argv"][:2] == ["dpkg", "--compare-versions"]
    assert "ge" in compare["ansible.builtin.command"]["argv"]
    for task in apt:
        if "ansible.builtin.get_url" in task or "deb" in task.get("ansible.builtin.apt", {}):
            assert "not (cuda_repo_keyring_current | bool)" in str(task["when"])


def test_the_environment_is_rebuilt_until_its_marker_is_written() -> None:
    main = tasks("conda")
    text = (ROLES / "conda" / "tasks" / "main.yml").read_text() + (ROLES / "conda" / "tasks" / "build.yml").read_text()
    # only Miniforge's own installer uses creates
    assert "creates:" not in text.split("Point conda at the configured channel")[1]
    assert "env update" not in text  # rebuilt instead: --prune does not remove what pip installed
    build = tasks("conda", "build.yml")
    assert "ansible.builtin.file" in build[0] and build[0]["ansible.builtin.file"]["state"] == "absent"
    assert build[-1]["ansible.builtin.copy"]["dest"].endswith("{{ conda_marker_name }}")
    include = next(t for t in main if t.get("ansible.builtin.include_tasks") == "build.yml")
    assert "not (conda_env_current | bool)" in include["when"]


def test_svdops_never_comes_from_an_index_name_by_default() -> None:
    defaults = yaml.safe_load((ROLES / "svdops" / "defaults" / "main.yml").read_text())
    assert defaults["svdops_package_spec"] == "" and defaults["svdops_package_spec_trusted"] is False
    refuse = next(t for t in tasks("conda") if t["name"] == "Refuse svdops from an index name")
    assert "svdops_package_wheel" in refuse["ansible.builtin.assert"]["that"]


def test_debian_12_and_ubuntu_targets_are_supported() -> None:
    defaults = yaml.safe_load((ROLES / "svdops" / "defaults" / "main.yml").read_text())
    assert defaults["svdops_supported_releases"] == ["22.04", "24.04", "26.04"]
    assert defaults["svdops_supported_debian_releases"] == ["12"]
    assert defaults["svdops_nvidia_distributions"] == ["Ubuntu", "Debian"]
    for role in ("cuda_repo", "nvidia_driver", "cuda_toolkit", "cudnn", "nccl", "fabricmanager", "dcgm"):
        assert "== 'Ubuntu'" not in (ROLES / role / "tasks" / "main.yml").read_text(), role
