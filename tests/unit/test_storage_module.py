"""Pure parts of the storage role's inspection module (playbooks/roles/storage/library/svdops_disks.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

MODULE = Path(__file__).resolve().parents[2] / "playbooks" / "roles" / "storage" / "library" / "svdops_disks.py"


@pytest.fixture(scope="module")
def disks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("svdops_disks", MODULE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "brief, expected",
    [
        # a RAID5 still resyncing onto its spare, then the same array once the resync is over
        ("ARRAY /dev/md/data metadata=1.2 spares=1 name=svdvm:data UUID=3b2c0a1e:11aa2b3c:44dd5e6f:77889900",
         "ARRAY /dev/md/data metadata=1.2 name=svdvm:data UUID=3b2c0a1e:11aa2b3c:44dd5e6f:77889900"),
        ("ARRAY /dev/md/data metadata=1.2 name=svdvm:data UUID=3b2c0a1e:11aa2b3c:44dd5e6f:77889900",
         "ARRAY /dev/md/data metadata=1.2 name=svdvm:data UUID=3b2c0a1e:11aa2b3c:44dd5e6f:77889900"),
        ("ARRAY /dev/md/scratch level=raid0 num-devices=4 metadata=1.2 name=h:scratch UUID=a:b:c:d devices=/dev/x",
         "ARRAY /dev/md/scratch metadata=1.2 name=h:scratch UUID=a:b:c:d"),
    ],
)
def test_mdadm_conf_line_ignores_fields_that_change_by_themselves(disks: ModuleType, brief: str,
                                                                   expected: str) -> None:
    assert disks.stable_brief(brief) == expected


def test_only_the_exact_by_id_path_unlocks_a_disk(disks: ModuleType) -> None:
    listed = "/dev/disk/by-id/nvme-QEMU_NVMe_Ctrl_svd0001"
    # before: a base name, a kernel name or a resolved path unlocked whatever disk had that name today
    for loose in ("nvme0n1", "/dev/nvme0n1", "vdz", "nvme-QEMU_NVMe_Ctrl_svd0001", listed + "-part1",
                  listed.replace("by-id", "by-path"), listed + "/"):
        assert not disks.may_wipe(listed, disks.wipe_set([loose])), loose
    assert disks.may_wipe(listed, disks.wipe_set([listed]))
    assert disks.wipe_set(["/dev/nvme0n1", listed, 5]) == {listed}


# --- fstab: a mount point someone else already uses is refused, destroyed filesystems are not ours ------

FSTAB = """\
# /etc/fstab: static file system information.
/dev/vda / ext4 defaults 0 1
nas.lab:/export/data /data nfs4 defaults,_netdev 0 0
#UUID=0a0a0a0a-0000-4000-8000-000000000001 /scratch xfs noatime 0 0
UUID=3F0C6A51-1B1D-4E4B-9C1A-1234567890AB /scratch/ xfs noatime 0 0
/dev/disk/by-uuid/77777777-0000-4000-8000-000000000007 /mnt/my\\040disk ext4 defaults 0 2
"""


def test_fstab_entries_find_every_line_for_a_mount_point(disks: ModuleType) -> None:
    assert [e["spec"] for e in disks.fstab_entries(FSTAB, "/data")] == ["nas.lab:/export/data"]
    # the commented line is not an entry; a trailing '/' names the same mount point
    assert [e["spec"] for e in disks.fstab_entries(FSTAB, "/scratch")] == ["UUID=3F0C6A51-1B1D-4E4B-9C1A-1234567890AB"]
    # fstab escapes a space as \040
    assert len(disks.fstab_entries(FSTAB, "/mnt/my disk")) == 1
    assert disks.fstab_entries(FSTAB, "/srv/none") == []


def test_an_nfs_line_on_the_mount_point_is_foreign(disks: ModuleType) -> None:
    entries = disks.fstab_entries(FSTAB, "/data")
    # before: the role's lineinfile replaced it with the array's line without a word
    assert disks.foreign_fstab_lines(entries, None, []) == ["nas.lab:/export/data /data nfs4 defaults,_netdev 0 0"]
    assert disks.foreign_fstab_lines(entries, "3f0c6a51-1b1d-4e4b-9c1a-1234567890ab", []) == [entries[0]["line"]]


def test_the_arrays_own_line_and_a_destroyed_filesystems_line_are_not_foreign(disks: ModuleType) -> None:
    entries = disks.fstab_entries(FSTAB, "/scratch")
    own = "3f0c6a51-1b1d-4e4b-9c1a-1234567890ab"
    assert disks.foreign_fstab_lines(entries, own, []) == []  # UUIDs compare without case
    assert disks.foreign_fstab_lines(entries, None, [own.upper()]) == []  # retired by this run's wipe
    assert disks.foreign_fstab_lines(entries, "another", []) == [entries[0]["line"]]
    assert disks.spec_uuid("/dev/disk/by-uuid/ABC") == "abc" and disks.spec_uuid("LABEL=x") is None


# --- holders: md arrays are stopped, device-mapper users refused -------------------------------------------


def _sys_block(tmp_path: Path, name: str, dm_uuid: str | None = None, dm_name: str = "",
               above: tuple[str, ...] = ()) -> Path:
    base = tmp_path / name
    (base / "holders").mkdir(parents=True)
    for holder in above:
        (base / "holders" / holder).touch()
    if dm_uuid is not None:
        (base / "dm").mkdir()
        (base / "dm" / "uuid").write_text(dm_uuid + "\n")
        (base / "dm" / "name").write_text(dm_name + "\n")
    return tmp_path


@pytest.mark.parametrize(
    "name, dm_uuid, dm_name, kind",
    [
        ("md127", None, "", "md"),
        ("dm-0", "LVM-Q2n9aVc0WKXfNq1dXhA8IFa3Yv0Gm1u7cp0hJoQkzcdfpgZvH05V4C1mJb3nP9eO", "vg0-scratch", "LVM"),
        ("dm-1", "CRYPT-LUKS2-6f1e0b6a1d9e4c3f8b0a2c4d5e6f7a8b-luks-6f1e", "luks-6f1e", "dm-crypt"),
        ("dm-2", "mpath-3600508b400105e210000900000490000", "mpatha", "multipath"),
        ("dm-3", "", "plain", "device-mapper"),
    ],
)
def test_holders_are_classified_from_sysfs(disks: ModuleType, tmp_path: Path, name: str, dm_uuid: str | None,
                                           dm_name: str, kind: str) -> None:
    sys_block = _sys_block(tmp_path, name, dm_uuid, dm_name)
    assert disks.holder_kind(str(sys_block), name) == (kind, dm_name)


def _holder(path: str, kind: str, label: str = "", above: list[str] | None = None,
            mounts: list[str] | None = None, fs: str | None = None, md: str | None = None) -> dict:  # type: ignore[type-arg]
    return {"path": path, "kind": kind, "label": label, "holders": above or [], "mountpoints": mounts or [],
            "fs_uuid": fs, "md_uuid": md}


def _dev(wipe: bool, holders: list[str], mounts: list[str] | None = None, fs: list[str] | None = None) -> dict:  # type: ignore[type-arg]
    return {"wipe": wipe, "holders": holders, "mountpoints": mounts or [], "fs_uuids": fs or []}


def test_wiping_stops_md_holders_unmounts_them_and_names_what_it_destroys(disks: ModuleType) -> None:
    holders = {"md127": _holder("/dev/md127", "md", mounts=["/legacy"], fs="fs-legacy", md="a:b:c:d")}
    devices = {"/dev/disk/by-id/a": _dev(True, ["md127"]), "/dev/disk/by-id/b": _dev(True, ["md127"]),
               "/dev/disk/by-id/c": _dev(True, [], mounts=["/precious"], fs=["fs-precious"]),
               "/dev/disk/by-id/d": _dev(False, ["md5"])}  # not named for wiping: not looked at
    plan = disks.wipe_plan(devices, holders)
    # before: the md array's own mount was left mounted (so mdadm --stop failed), and its fstab and
    # mdadm.conf lines stayed behind
    assert plan == {"unmount": ["/legacy", "/precious"], "stop": ["/dev/md127"], "refused": [],
                    "fs_uuids": ["fs-legacy", "fs-precious"], "md_uuids": ["a:b:c:d"]}


def test_wiping_refuses_lvm_dm_crypt_and_an_md_array_with_something_on_top(disks: ModuleType) -> None:
    holders = {"dm-0": _holder("/dev/dm-0", "LVM", "vg0-scratch"), "dm-1": _holder("/dev/dm-1", "dm-crypt", "luks-1"),
               "md5": _holder("/dev/md5", "md", above=["/dev/dm-7"])}
    devices = {"/dev/disk/by-id/a": _dev(True, ["dm-0"]), "/dev/disk/by-id/b": _dev(True, ["dm-1"]),
               "/dev/disk/by-id/c": _dev(True, ["md5"])}
    plan = disks.wipe_plan(devices, holders)
    # before: `mdadm --stop /dev/dm-0` ran (and failed half-way through the wipe)
    assert plan["stop"] == [] and plan["md_uuids"] == []
    refused = " | ".join(plan["refused"])
    assert "/dev/disk/by-id/a: /dev/dm-0 (vg0-scratch) is a LVM device" in refused and "vgchange -an" in refused
    assert "/dev/dm-1 (luks-1) is a dm-crypt device" in refused and "cryptsetup close" in refused
    assert "/dev/md5 is itself in use by /dev/dm-7" in refused


# --- the new storage variables are checked before Ansible (svdops/provision/plan.py) -----------------------


@pytest.mark.parametrize("variables", [
    {"svdops_storage_scratch_mode": "1777", "svdops_storage_data_mode": "2775", "svdops_storage_data_group": "lab"},
    {"svdops_storage_scratch_mode": "", "svdops_storage_data_group": "", "svdops_storage_device_timeout_s": 30},
    {"svdops_storage_data_mode": "0750"},
])
def test_modes_groups_and_timeouts_that_are_fine(variables: dict) -> None:  # type: ignore[type-arg]
    from svdops.provision import plan

    plan.check_storage_vars(variables, where="x")


@pytest.mark.parametrize("variables, message", [
    # YAML reads 1777 unquoted as the decimal number 1777, which is not mode 1777
    ({"svdops_storage_scratch_mode": 1777}, "svdops_storage_scratch_mode: 1777 is not a mode"),
    ({"svdops_storage_data_mode": "rwxr-xr-x"}, "svdops_storage_data_mode: 'rwxr-xr-x' is not a mode"),
    ({"svdops_storage_data_mode": "0855"}, "is not a mode"),
    ({"svdops_storage_data_group": "lab; reboot"}, "svdops_storage_data_group: 'lab; reboot' is not a group name"),
    ({"svdops_storage_device_timeout_s": "90s"}, "svdops_storage_device_timeout_s: '90s' is not whole seconds"),
    ({"svdops_storage_device_timeout_s": 0}, "is not whole seconds"),
])
def test_bad_modes_groups_and_timeouts_are_refused(variables: dict, message: str) -> None:  # type: ignore[type-arg]
    from svdops.errors import BadInputError
    from svdops.provision import plan

    with pytest.raises(BadInputError) as caught:
        plan.check_storage_vars(variables, where="hosts.yml: host gpu01")
    assert message in str(caught.value) and caught.value.exit_code == 2
