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
