"""The storage role for real, inside a qemu VM with four NVMe disks and two SCSI data disks.

`svdops provision --tags storage` builds an NVMe RAID0 scratch array and a RAID5 data array over
by-id allowlists, twice (the second run changes nothing), then the VM reboots from the initramfs the
role rebuilt and both arrays come back under their names, mounted by UUID. A data disk holding a
filesystem is refused without --wipe, and nothing is created while any disk is refused.

Slow (about 6 minutes, plus about 3 minutes once to build the cached root filesystem): skip with
-m "not vm". The tests run in order against one VM.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from svdops.cli.main import cli

import vm_rig  # isort: skip  (tests/integration is on sys.path)

pytestmark = [
    pytest.mark.vm,
    pytest.mark.slow,
    pytest.mark.skipif(vm_rig.skip_reason() is not None, reason=str(vm_rig.skip_reason())),
]

SCRATCH = [vm_rig.nvme_by_id(i) for i in range(1, vm_rig.NVME_COUNT + 1)]
DATA = [vm_rig.data_by_id(i) for i in range(1, vm_rig.DATA_COUNT + 1)]
PROFILE = """\
description: "test: NVMe RAID0 scratch and a two-disk RAID5 data array"
extends: ci-cpu
storage:
  scratch: {level: raid0, nvme: true, min_devices: 4}
  data: {levels: [raid5], min_devices: 2}
"""


@pytest.fixture(scope="module")
def vm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[vm_rig.Vm]:
    with vm_rig.running_vm(tmp_path_factory.mktemp("vm")) as running:
        # a disk that is in use for something else: an XFS filesystem nobody listed for wiping
        running.ssh(f"udevadm settle && mkfs.xfs -q -L precious {DATA[0]}")
        yield running


@pytest.fixture(scope="module")
def setup(vm: vm_rig.Vm) -> dict[str, Path]:
    work = vm.work
    profile = work / "storage-test.yaml"
    profile.write_text(PROFILE)
    inventory = work / "hosts.yml"
    host = {"ansible_host": "127.0.0.1", "ansible_port": vm.port, "ansible_user": "root",
            "ansible_ssh_private_key_file": str(vm.key), "ansible_python_interpreter": "/usr/bin/python3",
            "svdops_storage_scratch_devices": SCRATCH, "svdops_storage_data_devices": DATA}
    inventory.write_text(yaml.safe_dump({"all": {"children": {"gpu": {"hosts": {vm_rig.HOSTNAME: host}}}}}))
    return {"profile": profile, "inventory": inventory, "runs": work / "runs"}


def provision(setup: dict[str, Path], *args: str) -> tuple[int, str, dict]:  # type: ignore[type-arg]
    # the VM's host key is new on every build: not checked, and not written into the user's known_hosts
    env = {"ANSIBLE_HOST_KEY_CHECKING": "False", "SVDOPS_RUNS_DIR": str(setup["runs"]),
           "ANSIBLE_SSH_ARGS": "-o ControlMaster=no -o UserKnownHostsFile=/dev/null"}
    result = CliRunner(env=env).invoke(cli, ["provision", "-p", str(setup["profile"]), "--inventory",
                                             str(setup["inventory"]), "--tags", "storage", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    runs = sorted(setup["runs"].iterdir())
    summary = json.loads((runs[-1] / "result.json").read_text()) if (runs[-1] / "result.json").exists() else {}
    return result.exit_code, result.output, summary


def md_arrays(vm: vm_rig.Vm) -> list[str]:
    return re.findall(r"^(md\w+) :", vm.ssh("cat /proc/mdstat").stdout, re.M)


def test_a_disk_holding_a_filesystem_is_refused_and_nothing_is_created(vm: vm_rig.Vm, setup: dict[str, Path]) -> None:
    code, out, summary = provision(setup)
    assert code == 1, out
    assert DATA[0] in out and "xfs signature" in out and "--wipe" in out
    assert summary["recap"][vm_rig.HOSTNAME]["failed"] == 1
    # the scratch disks were fine, but no array was started while any disk was refused
    assert md_arrays(vm) == []
    assert "xfs" in vm.ssh(f"blkid -p -o value -s TYPE {DATA[0]}").stdout


def test_check_mode_plans_without_touching_the_disks(vm: vm_rig.Vm, setup: dict[str, Path]) -> None:
    code, out, summary = provision(setup, "--check", "--wipe", DATA[0])
    assert code == 0, out
    assert "would create /dev/md/scratch (raid0" in out and "would create /dev/md/data (raid5" in out
    plan = summary["plan"][vm_rig.HOSTNAME]["storage"]
    assert [a["name"] for a in plan["arrays"]] == ["scratch", "data"]
    assert plan["arrays"][1]["options"] == "noatime,nofail"
    assert md_arrays(vm) == []
    assert "xfs" in vm.ssh(f"blkid -p -o value -s TYPE {DATA[0]}").stdout
    assert "/scratch" not in vm.ssh("cat /etc/fstab").stdout


def test_wipe_lets_the_arrays_be_built(vm: vm_rig.Vm, setup: dict[str, Path]) -> None:
    code, out, summary = provision(setup, "--wipe", DATA[0])
    assert code == 0, out
    assert summary["recap"][vm_rig.HOSTNAME]["changed"] > 0
    detail = vm.ssh("mdadm --detail /dev/md/scratch; mdadm --detail /dev/md/data").stdout
    assert re.search(r"Raid Level : raid0", detail) and re.search(r"Raid Level : raid5", detail)
    assert f"Name : {vm_rig.HOSTNAME}:scratch" in detail and f"Name : {vm_rig.HOSTNAME}:data" in detail
    assert detail.count("active sync") >= 4  # the data array may still be resyncing its second disk
    fstab = vm.ssh("cat /etc/fstab").stdout
    assert re.search(r"^UUID=\S+ /scratch xfs noatime 0 0$", fstab, re.M), fstab
    assert re.search(r"^UUID=\S+ /data xfs noatime,nofail 0 0$", fstab, re.M), fstab
    conf = vm.ssh("cat /etc/mdadm/mdadm.conf").stdout
    assert re.search(r"^ARRAY /dev/md/scratch .*name=\S+:scratch", conf, re.M), conf
    assert re.search(r"^ARRAY /dev/md/data .*name=\S+:data", conf, re.M), conf
    mounts = vm.ssh("findmnt -n -o TARGET,FSTYPE,OPTIONS /scratch; findmnt -n -o TARGET,FSTYPE /data").stdout
    assert "/scratch xfs" in mounts and "noatime" in mounts and "/data" in mounts


def test_a_second_run_changes_nothing(vm: vm_rig.Vm, setup: dict[str, Path]) -> None:
    code, out, summary = provision(setup, "--wipe", DATA[0])
    assert code == 0, out
    assert summary["recap"][vm_rig.HOSTNAME]["changed"] == 0, out


def test_after_a_reboot_the_arrays_keep_their_names_and_mount_by_uuid(vm: vm_rig.Vm, setup: dict[str, Path]) -> None:
    uuids = {m: vm.ssh(f"findmnt -n -o UUID {m}").stdout.strip() for m in ("/scratch", "/data")}
    vm.reboot()
    for name, mount in (("scratch", "/scratch"), ("data", "/data")):
        assert vm.ssh(f"test -b /dev/md/{name}", check=False).returncode == 0, vm.ssh("ls -l /dev/md/ /dev/md*").stdout
        assert f"Name : {vm_rig.HOSTNAME}:{name}" in vm.ssh(f"mdadm --detail /dev/md/{name}").stdout
        assert vm.ssh(f"findmnt -n -o UUID {mount}").stdout.strip() == uuids[mount]
        # the mount came from the fstab's UUID= line, and that UUID is the array's filesystem
        assert vm.ssh(f"blkid -p -o value -s UUID /dev/md/{name}").stdout.strip() == uuids[mount]
    code, out, summary = provision(setup)
    assert code == 0, out
    assert summary["recap"][vm_rig.HOSTNAME]["changed"] == 0, out

