"""The playbooks pass ansible-lint's production profile and ansible-playbook --syntax-check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


def _env(tmp_path: Path) -> dict[str, str]:
    # the venv's tools first; ansible refuses a non-UTF-8 locale; its caches away from the user's home
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "LC_ALL": "C.UTF-8",
            "ANSIBLE_HOME": str(tmp_path / "ansible-home"), "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp")}


def test_ansible_lint_production_profile_is_clean(tmp_path: Path) -> None:
    result = subprocess.run([str(BIN / "ansible-lint"), "--offline", "--nocolor", "--profile", "production"],
                            cwd=PLAYBOOKS, env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "Profile 'production' was required, and it passed" in result.stdout + result.stderr


def test_site_yml_passes_the_syntax_check(tmp_path: Path) -> None:
    result = subprocess.run([str(BIN / "ansible-playbook"), "--syntax-check", "-i", "localhost,", "site.yml"],
                            cwd=PLAYBOOKS, env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_role_is_tagged_with_its_name() -> None:
    import yaml

    from svdops.provision.run import ROLES

    play = yaml.safe_load((PLAYBOOKS / "site.yml").read_text())[0]
    tagged = {r["role"]: r.get("tags", []) for r in play["roles"]}
    for role in ROLES:
        assert role in tagged[role], role
    assert set(ROLES) | {"svdops", "cuda_repo"} == set(tagged)
