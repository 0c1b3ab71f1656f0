"""svdops.paths: one lookup order for profiles and playbooks (option/env, the user's folder, the package)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from svdops import paths
from svdops.cli.main import cli
from svdops.errors import BadInputError
from svdops.judge.profiles import list_profiles, load_profile
from svdops.provision.run import playbooks_dir

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_user_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv(paths.PROFILE_PATH_ENV, raising=False)
    monkeypatch.delenv(paths.PLAYBOOKS_ENV, raising=False)


def _playbooks(folder: Path) -> Path:
    (folder / "roles").mkdir(parents=True)
    (folder / "site.yml").write_text("- hosts: all\n  tasks: []\n", encoding="utf-8")
    return folder


def test_the_package_ships_the_top_level_folders_people_edit() -> None:
    assert paths.shipped("playbooks") == REPO / "playbooks"
    assert paths.shipped("profiles") == REPO / "profiles"
    assert (paths.shipped("playbooks") / "roles" / "storage" / "library" / "svdops_disks.py").is_file()


def test_playbooks_order_option_env_user_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert paths.find_playbooks() == paths.Place(REPO / "playbooks", paths.FROM_PACKAGE)
    user = _playbooks(tmp_path / "config" / "svdops" / "playbooks")
    assert paths.find_playbooks() == paths.Place(user, paths.FROM_USER)
    env = _playbooks(tmp_path / "env")
    monkeypatch.setenv(paths.PLAYBOOKS_ENV, str(env))
    assert paths.find_playbooks() == paths.Place(env, "$SVDOPS_PLAYBOOKS")
    option = _playbooks(tmp_path / "option")
    assert paths.find_playbooks(option) == paths.Place(option, paths.FROM_OPTION)
    assert playbooks_dir(option) == option


def test_a_folder_without_site_yml_is_passed_over(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "config" / "svdops" / "playbooks" / "roles").mkdir(parents=True)
    monkeypatch.setenv(paths.PLAYBOOKS_ENV, str(tmp_path / "nowhere"))
    assert paths.find_playbooks().origin == paths.FROM_PACKAGE


def test_no_playbooks_anywhere_names_every_place_tried(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(paths, "package_dir", lambda: tmp_path / "site-packages" / "svdops")
    monkeypatch.setenv(paths.PLAYBOOKS_ENV, str(tmp_path / "env"))
    with pytest.raises(BadInputError) as err:
        paths.find_playbooks()
    assert err.value.where is not None
    assert f"{tmp_path / 'env'} ($SVDOPS_PLAYBOOKS)" in err.value.where
    assert f"{tmp_path / 'config' / 'svdops' / 'playbooks'} (user)" in err.value.where
    assert f"{tmp_path / 'site-packages' / 'svdops' / 'playbooks'} (package)" in err.value.where
    assert err.value.hint is not None and "SVDOPS_PLAYBOOKS" in err.value.hint


def test_a_relative_xdg_config_home_is_ignored(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/config")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert paths.user_config_dir() == tmp_path / ".config" / "svdops"


def test_a_user_profile_shadows_the_shipped_one_of_its_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    mine = tmp_path / "config" / "svdops" / "profiles"
    mine.mkdir(parents=True)
    (mine / "svd-host.yaml").write_text("description: the lab's own svd-host\n", encoding="utf-8")
    assert load_profile("svd-host").source == mine / "svd-host.yaml"
    assert load_profile("svd-host").description == "the lab's own svd-host"
    # the env path comes before the user's folder
    env = tmp_path / "env"
    env.mkdir()
    (env / "svd-host.yaml").write_text("description: from the env path\n", encoding="utf-8")
    monkeypatch.setenv(paths.PROFILE_PATH_ENV, str(env))
    assert load_profile("svd-host").source == env / "svd-host.yaml"
    names = [p.name for p in list_profiles()]
    assert names.count("svd-host") == 1 and "ci-cpu" in names


def test_paths_command_says_which_playbooks_are_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    user = _playbooks(tmp_path / "config" / "svdops" / "playbooks")
    result = CliRunner().invoke(cli, ["paths", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert [(r["origin"], r["path"], r["state"]) for r in document["playbooks"]] == [
        ("user", str(user), "used"), ("package", str(REPO / "playbooks"), "shadowed")]
    package = document["profiles"][-1]
    assert package["origin"] == "package" and "svd-host" in package["profiles"]
    assert all(row["state"] == "present" for row in document["shipped"])
    text = CliRunner().invoke(cli, ["paths"])
    assert text.exit_code == 0
    assert f"user                   {user}  [used]" in text.output
