"""The inventory cache (svdops/host/inventory_cache.py): a hit gives what Ansible gives, any change of
what Ansible's answer depends on misses, dynamic inventories are never cached, and a cache file is
hostile data: corrupt, foreign or tampered entries are ignored and rebuilt, never trusted or fatal."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from svdops.host import inventory as inventory_module
from svdops.host import inventory_cache as cache
from svdops.host.inventory import Target, select_targets

INI = """\
[gpu]
gpu[01:03]
gpu04 ansible_host=10.0.0.4

[head]
head01 ansible_host=10.0.0.1 ansible_user=admin

[gpu:vars]
ansible_port=2201
"""


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """hosts.ini with group_vars/ and host_vars/ beside it; cwd and HOME in tmp_path (no stray ansible.cfg)."""
    work = tmp_path / "work"
    (work / "group_vars").mkdir(parents=True)
    (work / "host_vars").mkdir()
    (work / "hosts.ini").write_text(INI)
    (work / "group_vars" / "all.yml").write_text("ansible_user: root\n")
    (work / "host_vars" / "gpu02.yml").write_text("ansible_port: 2202\n")
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    for name in [k for k in os.environ if k.startswith("ANSIBLE_")]:
        monkeypatch.delenv(name)
    return work


def fresh(inventory: Path, limit: str | None = None) -> list[Target]:
    """What Ansible itself answers, with the cache off."""
    os.environ[cache.CACHE_ENV] = "off"
    try:
        return select_targets(inventory=inventory, limit=limit)
    finally:
        del os.environ[cache.CACHE_ENV]


def entries() -> list[Path]:
    return sorted(cache.cache_dir().glob("*.json"))


def no_ansible(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any read through Ansible fail loudly: what answers now can only be the cache."""
    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("Ansible was asked")

    monkeypatch.setattr(inventory_module, "load_inventory", refuse)


def test_a_hit_gives_the_same_hosts_and_vars_without_asking_ansible(lab: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    inventory = lab / "hosts.ini"
    expected = fresh(inventory, "gpu:!gpu03")
    assert entries() == []
    assert select_targets(inventory=inventory, limit="gpu:!gpu03") == expected  # a miss: read and stored
    assert len(entries()) == 1
    no_ansible(monkeypatch)
    hit = select_targets(inventory=inventory, limit="gpu:!gpu03")
    assert hit == expected
    assert [(t.name, t.address, t.port, t.user, t.groups) for t in hit] == [
        ("gpu01", "gpu01", 2201, "root", ("gpu",)),
        ("gpu02", "gpu02", 2202, "root", ("gpu",)),
        ("gpu04", "10.0.0.4", 2201, "root", ("gpu",)),
    ]


def test_the_cache_is_private(lab: Path) -> None:
    select_targets(inventory=lab / "hosts.ini")
    [entry] = entries()
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.cache_dir().stat().st_mode) == 0o700
    assert not [p for p in cache.cache_dir().iterdir() if p.name.startswith(".")]  # no temporary left over


def _edit_inventory(lab: Path) -> None:
    (lab / "hosts.ini").write_text(INI.replace("ansible_port=2201", "ansible_port=2301"))


def _edit_group_vars(lab: Path) -> None:
    (lab / "group_vars" / "all.yml").write_text("ansible_user: ops\n")


def _add_group_vars_file(lab: Path) -> None:
    (lab / "group_vars" / "gpu.yml").write_text("ansible_user: gpuops\n")


def _edit_host_vars(lab: Path) -> None:
    (lab / "host_vars" / "gpu02.yml").write_text("ansible_port: 2402\n")


def _ansible_cfg_in_cwd(lab: Path) -> None:
    (lab / "ansible.cfg").write_text("[defaults]\nremote_user = cfguser\n")


def _home_ansible_cfg(lab: Path) -> None:
    (Path.home() / ".ansible.cfg").write_text("[defaults]\nremote_user = cfguser\n")


def _ansible_env(lab: Path) -> None:
    os.environ["ANSIBLE_REMOTE_PORT"] = "2500"


@pytest.mark.parametrize("change", [_edit_inventory, _edit_group_vars, _add_group_vars_file, _edit_host_vars,
                                    _ansible_cfg_in_cwd, _home_ansible_cfg, _ansible_env])
def test_any_change_of_what_the_answer_depends_on_misses(lab: Path, monkeypatch: pytest.MonkeyPatch,
                                                         change: object) -> None:
    inventory = lab / "hosts.ini"
    monkeypatch.setenv("ANSIBLE_NOCOLOR", "1")  # monkeypatch then also undoes _ansible_env's variable
    before = cache.key_for(inventory, None, None)
    assert before is not None
    select_targets(inventory=inventory)
    change(lab)  # type: ignore[operator]
    try:
        after = cache.key_for(inventory, None, None)
        assert after is not None and after != before
        reads: list[Path] = []
        real = inventory_module.load_inventory

        def spy(path: Path) -> inventory_module.Inventory:
            reads.append(path)
            return real(path)

        monkeypatch.setattr(inventory_module, "load_inventory", spy)
        select_targets(inventory=inventory)
        assert reads == [inventory]  # a miss: Ansible read it again
    finally:
        os.environ.pop("ANSIBLE_REMOTE_PORT", None)


SELECT = """\
import json, sys
from pathlib import Path
from svdops.host.inventory import select_targets
targets = select_targets(inventory=Path(sys.argv[1]), limit="gpu02")
print(json.dumps({"ports": [t.port for t in targets], "ansible_imported": "ansible" in sys.modules}))
"""


def test_edited_vars_reach_the_next_run(lab: Path) -> None:
    """Three runs as separate processes (as the CLI runs): a miss, a hit that never imports Ansible,
    and after host_vars/ changed, a miss again with the new value (Ansible keeps state within a process)."""

    def run() -> dict[str, object]:
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        out = subprocess.run([sys.executable, "-c", SELECT, str(lab / "hosts.ini")], capture_output=True,
                             text=True, check=True, env=env, cwd=lab)
        return dict(json.loads(out.stdout))

    assert run() == {"ports": [2202], "ansible_imported": True}
    assert run() == {"ports": [2202], "ansible_imported": False}
    _edit_host_vars(lab)
    assert run() == {"ports": [2402], "ansible_imported": True}


def test_limit_and_identity_are_part_of_the_key(lab: Path, tmp_path: Path) -> None:
    inventory = lab / "hosts.ini"
    key = tmp_path / "id_ed25519"
    keys = {cache.key_for(inventory, None, None), cache.key_for(inventory, "gpu", None),
            cache.key_for(inventory, "head", None), cache.key_for(inventory, None, key)}
    assert None not in keys and len(keys) == 4
    assert [t.name for t in select_targets(inventory=inventory, limit="gpu")] == ["gpu01", "gpu02", "gpu03", "gpu04"]
    assert [t.name for t in select_targets(inventory=inventory, limit="head")] == ["head01"]
    assert select_targets(inventory=inventory, limit="head", identity=key)[0].identity == key
    assert select_targets(inventory=inventory, limit="head")[0].identity is None


def test_a_dynamic_inventory_script_is_never_cached(lab: Path) -> None:
    script = lab / "inventory.py"
    script.write_text("#!/bin/sh\necho '{\"gpu\": {\"hosts\": [\"dyn01\"]}, \"_meta\": {\"hostvars\": {}}}'\n")
    script.chmod(0o755)
    assert cache.key_for(script, None, None) is None
    assert [t.name for t in select_targets(inventory=script)] == ["dyn01"]
    assert entries() == []
    # nor a directory holding one
    assert cache.key_for(lab, None, None) is None


def test_an_inventory_plugin_file_is_never_cached(lab: Path) -> None:
    plugin = lab / "hosts.yml"
    plugin.write_text("plugin: ansible.builtin.constructed\nstrict: false\n")
    assert cache.key_for(plugin, None, None) is None


@pytest.mark.parametrize("setting", ["ANSIBLE_VARS_ENABLED", "ANSIBLE_INVENTORY_ENABLED",
                                     "ANSIBLE_VAULT_PASSWORD_FILE"])
def test_settings_that_bring_in_other_plugins_or_vaults_are_never_cached(lab: Path, monkeypatch: pytest.MonkeyPatch,
                                                                        setting: str) -> None:
    monkeypatch.setenv(setting, "x")
    assert cache.key_for(lab / "hosts.ini", None, None) is None
    monkeypatch.delenv(setting)
    (lab / "ansible.cfg").write_text("[defaults]\nvars_plugins_enabled = host_group_vars,my.vars\n")
    assert cache.key_for(lab / "hosts.ini", None, None) is None


def test_a_limit_from_a_file_and_vaulted_vars_are_never_cached(lab: Path) -> None:
    assert cache.key_for(lab / "hosts.ini", "@retry.txt", None) is None
    (lab / "host_vars" / "gpu01.yml").write_text("ansible_user: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  6638\n")
    assert cache.key_for(lab / "hosts.ini", None, None) is None


def test_the_cache_can_be_turned_off(lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cache.CACHE_ENV, "off")
    select_targets(inventory=lab / "hosts.ini")
    assert not cache.cache_dir().exists()


def _garbage(entry: Path) -> None:
    entry.write_bytes(b"\x00\xff{not json")


def _truncated(entry: Path) -> None:
    entry.write_bytes(entry.read_bytes()[:40])


def _wrong_shape(entry: Path) -> None:
    entry.write_text(json.dumps({"format": cache.FORMAT, "key": entry.stem, "targets": [{"name": 1}]}))


def _hostile_name(entry: Path) -> None:
    data = json.loads(entry.read_text())
    data["targets"][0]["name"] = data["targets"][0]["address"] = "$(touch /tmp/svdops-pwned)"
    entry.write_text(json.dumps(data))


def _bad_port(entry: Path) -> None:
    data = json.loads(entry.read_text())
    data["targets"][0]["port"] = 70000
    entry.write_text(json.dumps(data))


def _another_key(entry: Path) -> None:
    data = json.loads(entry.read_text())
    data["key"] = "0" * 64
    entry.write_text(json.dumps(data))


def _readable_by_others(entry: Path) -> None:
    data = json.loads(entry.read_text())
    data["targets"][0]["address"] = "10.9.9.9"  # what a local attacker would plant
    entry.write_text(json.dumps(data))
    entry.chmod(0o644)


def _a_symlink(entry: Path) -> None:
    planted = entry.with_name("planted")
    data = json.loads(entry.read_text())
    data["targets"][0]["address"] = "10.9.9.9"
    planted.write_text(json.dumps(data))
    planted.chmod(0o600)
    entry.unlink()
    entry.symlink_to(planted)


@pytest.mark.parametrize("spoil", [_garbage, _truncated, _wrong_shape, _hostile_name, _bad_port, _another_key,
                                   _readable_by_others, _a_symlink])
def test_a_spoiled_cache_entry_is_ignored_and_rebuilt(lab: Path, spoil: object) -> None:
    inventory = lab / "hosts.ini"
    expected = select_targets(inventory=inventory)
    [entry] = entries()
    spoil(entry)  # type: ignore[operator]
    assert select_targets(inventory=inventory) == expected
    rebuilt = json.loads(entry.read_text())
    assert [t["address"] for t in rebuilt["targets"]] == [t.address for t in expected]
    assert not entry.is_symlink() and stat.S_IMODE(entry.stat().st_mode) == 0o600


def test_a_cache_folder_others_can_write_is_not_used(lab: Path) -> None:
    inventory = lab / "hosts.ini"
    expected = select_targets(inventory=inventory)
    folder = cache.cache_dir()
    folder.chmod(0o777)
    try:
        for entry in entries():
            data = json.loads(entry.read_text())
            data["targets"][0]["address"] = "10.9.9.9"
            entry.write_text(json.dumps(data))
        assert select_targets(inventory=inventory) == expected
    finally:
        folder.chmod(0o700)


def test_old_entries_are_pruned(lab: Path) -> None:
    inventory = lab / "hosts.ini"
    for i in range(cache.KEEP_ENTRIES + 3):
        (lab / "hosts.ini").write_text(INI + f"\n[extra]\nspare{i:02d}\n")
        select_targets(inventory=inventory, limit="head")
    assert len(entries()) == cache.KEEP_ENTRIES


def test_an_inventory_folder_with_a_symlink_loop_is_not_cached(lab: Path) -> None:
    folder = lab / "inv"
    folder.mkdir()
    (folder / "hosts").write_text("[gpu]\ngpu01\n")
    (folder / "again").symlink_to(folder)  # a walk that follows links would never end
    assert cache.key_for(folder, None, None) is None
    (folder / "again").unlink()
    assert cache.key_for(folder, None, None) is not None


def test_an_inventory_folder_with_an_unreadable_folder_is_not_cached(lab: Path) -> None:
    folder = lab / "inv"
    folder.mkdir()
    (folder / "hosts").write_text("[gpu]\ngpu01\n")
    (folder / "locked").mkdir(mode=0)
    try:
        if os.access(folder / "locked", os.R_OK):  # root reads anything: nothing to refuse
            pytest.skip("running as a user who can read a mode-000 folder")
        assert cache.key_for(folder, None, None) is None
    finally:
        (folder / "locked").chmod(0o700)
