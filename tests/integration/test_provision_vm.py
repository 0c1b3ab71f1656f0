"""The storage role for real, inside a qemu VM with four NVMe disks and four SCSI data disks.

`svdops provision --tags storage` builds an NVMe RAID0 scratch array and a RAID6 data array over
by-id allowlists. The VM starts with what a lab machine has lying around: an XFS filesystem on one
data disk, an old md RAID1 ("legacy") over two others, mounted by fstab and listed in mdadm.conf, and
an NFS line for /data in fstab. Without --wipe the disks are refused; with --wipe the foreign /data
line is refused; nothing is created while anything is refused. Then --wipe builds both arrays (the
legacy array's fstab and mdadm.conf lines retired, RAID6 with an internal bitmap, mounts with
nofail and a device timeout, scratch 1777), a second run changes nothing (and keeps a mode the admin
set), the VM reboots from the initramfs the role rebuilt and both arrays come back under their
names, mounted by UUID. Then it boots with one NVMe and one data disk missing: it must still boot
(not emergency mode), with the RAID6 degraded but mounted and the RAID0 skipped.

Last, the same VM gets the whole site.yml (every role, no --tags) against the stand-ins of
tests/integration/standins.py (NVIDIA's CUDA repository for Debian 12, Miniforge and a conda channel;
named and described there and in docs/provision.md): applied once, again with no change, in check mode
with no change, and through a 580 -> 590 driver branch change, without a reboot (so they come after
the reboot tests, on a host whose arrays are degraded and not theirs to touch). SVDOPS_VM_SITE=0 leaves
them out.

Slow, and timed on the 2-core dev machine (qemu under software emulation): the storage tests about 8
minutes idle (14 with other work on the machine), plus about 6 minutes once to build the cached root
filesystem; the site tests about 23 minutes (first run 523-602 s, 10-40 s per changed apt
task; second run 242-250 s; check mode 245-275 s; branch change 322 s). Skip all of it with
-m "not vm". The tests run in order against one VM.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from svdops.cli.main import cli

import standins  # isort: skip  (tests/integration is on sys.path)
import vm_rig  # isort: skip

pytestmark = [
    pytest.mark.vm,
    pytest.mark.slow,
    pytest.mark.skipif(vm_rig.skip_reason() is not None, reason=str(vm_rig.skip_reason())),
]

SCRATCH = [vm_rig.nvme_by_id(i) for i in range(1, vm_rig.NVME_COUNT + 1)]
DATA = [vm_rig.data_by_id(i) for i in range(1, vm_rig.DATA_COUNT + 1)]
# DATA[0] holds XFS; DATA[2] and DATA[3] the legacy RAID1; DATA[1] is empty
WIPE = ["--wipe", DATA[0], "--wipe", DATA[2], "--wipe", DATA[3]]
NFS_LINE = "nas.lab:/export/data /data nfs4 noauto,_netdev 0 0"
OPTIONS = "noatime,nofail,x-systemd.device-timeout=90s"
PROFILE = """\
description: "test: NVMe RAID0 scratch and a four-disk RAID6 data array"
extends: ci-cpu
storage:
  scratch: {level: raid0, nvme: true, min_devices: 4}
  data: {levels: [raid5, raid6], min_devices: 4}
"""


@pytest.fixture(scope="module")
def vm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[vm_rig.Vm]:
    with vm_rig.running_vm(tmp_path_factory.mktemp("vm")) as running:
        # a disk that is in use for something else: an XFS filesystem nobody listed for wiping; an old
        # array mounted through fstab and listed in mdadm.conf; an NFS export in fstab on /data
        running.ssh(
            f"set -e; udevadm settle; mkfs.xfs -q -L precious {DATA[0]}; "
            f"mdadm --create /dev/md/legacy --name=legacy --metadata=1.2 --level=1 --raid-devices=2 --run "
            f"{DATA[2]} {DATA[3]}; mkfs.ext4 -q -F -L legacy /dev/md/legacy; mkdir -p /legacy; "
            f"echo \"UUID=$(blkid -p -o value -s UUID /dev/md/legacy) /legacy ext4 defaults 0 2\" >> /etc/fstab; "
            f"mdadm --detail --brief /dev/md/legacy >> /etc/mdadm/mdadm.conf; echo '{NFS_LINE}' >> /etc/fstab; "
            f"systemctl daemon-reload; mount /legacy", timeout=600)
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


def provision(setup: dict[str, Path], *args: str, tags: tuple[str, ...] = ("storage",),
              ssh_args: str = "-o ControlMaster=no",
              env_extra: dict[str, str] | None = None) -> tuple[int, str, dict]:  # type: ignore[type-arg]
    # the VM's host key is new on every build: not checked, and not written into the user's known_hosts
    env = {"ANSIBLE_HOST_KEY_CHECKING": "False", "SVDOPS_RUNS_DIR": str(setup["runs"]),
           "ANSIBLE_SSH_ARGS": f"{ssh_args} -o UserKnownHostsFile=/dev/null", **(env_extra or {})}
    result = CliRunner(env=env).invoke(cli, ["provision", "-p", str(setup["profile"]), "--inventory",
                                             str(setup["inventory"]), *[a for t in tags for a in ("--tags", t)],
                                             *args])
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
    assert DATA[2] in out and "in use by /dev/md" in out
    assert summary["recap"][vm_rig.HOSTNAME]["failed"] == 1
    # the scratch disks were fine, but no array was started while any disk was refused
    assert len(md_arrays(vm)) == 1 and vm.ssh("findmnt -n /legacy", check=False).returncode == 0
    assert "xfs" in vm.ssh(f"blkid -p -o value -s TYPE {DATA[0]}").stdout


def test_an_fstab_line_for_the_mount_point_that_svdops_did_not_write_is_refused(vm: vm_rig.Vm,
                                                                                 setup: dict[str, Path]) -> None:
    code, out, _summary = provision(setup, *WIPE)
    # before: the NFS line was replaced by the array's line without a word
    assert code == 1, out
    assert "/data already has an fstab line that svdops did not write" in out and "nas.lab:/export/data" in out
    # refused before any wipe: the legacy array still runs and is mounted, the XFS is still there
    assert len(md_arrays(vm)) == 1 and vm.ssh("findmnt -n /legacy", check=False).returncode == 0
    assert "xfs" in vm.ssh(f"blkid -p -o value -s TYPE {DATA[0]}").stdout
    assert NFS_LINE in vm.ssh("cat /etc/fstab").stdout
    vm.ssh("sed -i '/^nas.lab:/d' /etc/fstab")


def test_check_mode_plans_without_touching_the_disks(vm: vm_rig.Vm, setup: dict[str, Path]) -> None:
    code, out, summary = provision(setup, "--check", *WIPE)
    assert code == 0, out
    assert "would create /dev/md/scratch (raid0" in out and "would create /dev/md/data (raid6" in out
    plan = summary["plan"][vm_rig.HOSTNAME]["storage"]
    assert [a["name"] for a in plan["arrays"]] == ["scratch", "data"]
    assert [a["options"] for a in plan["arrays"]] == [OPTIONS, OPTIONS]
    assert len(md_arrays(vm)) == 1 and vm.ssh("findmnt -n /legacy", check=False).returncode == 0
    assert "xfs" in vm.ssh(f"blkid -p -o value -s TYPE {DATA[0]}").stdout
    assert "/scratch" not in vm.ssh("cat /etc/fstab").stdout


def test_wipe_lets_the_arrays_be_built(vm: vm_rig.Vm, setup: dict[str, Path]) -> None:
    code, out, summary = provision(setup, *WIPE)
    assert code == 0, out
    assert summary["recap"][vm_rig.HOSTNAME]["changed"] > 0
    scratch, data = vm.ssh("mdadm --detail /dev/md/scratch").stdout, vm.ssh("mdadm --detail /dev/md/data").stdout
    assert "Raid Level : raid0" in scratch and "Raid Level : raid6" in data
    assert f"Name : {vm_rig.HOSTNAME}:scratch" in scratch and f"Name : {vm_rig.HOSTNAME}:data" in data
    assert scratch.count("active sync") == 4 and data.count("active sync") == 4
    # without a bitmap an unclean shutdown means a full resync (newer mdadm no longer adds one itself)
    assert "Intent Bitmap : Internal" in data, data
    fstab = vm.ssh("cat /etc/fstab").stdout
    # before: `/scratch xfs noatime 0 0`: one dead NVMe and the host stopped in emergency mode
    assert re.search(rf"^UUID=\S+ /scratch xfs {OPTIONS} 0 0$", fstab, re.M), fstab
    assert re.search(rf"^UUID=\S+ /data xfs {OPTIONS} 0 0$", fstab, re.M), fstab
    # the wiped legacy array: its fstab line retired (kept as a comment), its mdadm.conf line gone
    assert re.search(r"^# svdops --wipe destroyed this filesystem: UUID=\S+ /legacy ext4", fstab, re.M), fstab
    assert not re.search(r"^[^#].*/legacy", fstab, re.M), fstab
    conf = vm.ssh("cat /etc/mdadm/mdadm.conf").stdout
    assert re.search(r"^ARRAY /dev/md/scratch .*name=\S+:scratch", conf, re.M), conf
    assert re.search(r"^ARRAY /dev/md/data .*name=\S+:data", conf, re.M), conf
    assert "legacy" not in conf, conf
    mounts = vm.ssh("findmnt -n -o TARGET,FSTYPE,OPTIONS /scratch; findmnt -n -o TARGET,FSTYPE /data").stdout
    assert "/scratch xfs" in mounts and "noatime" in mounts and "/data" in mounts
    assert vm.ssh("findmnt -n /legacy", check=False).returncode != 0
    # before: 0755 on both, so users could not write to /scratch
    assert vm.ssh("stat -c %a /scratch /data").stdout.split() == ["1777", "755"]


def test_a_second_run_changes_nothing_and_keeps_the_mode_the_admin_set(vm: vm_rig.Vm,
                                                                       setup: dict[str, Path]) -> None:
    vm.ssh("chmod 0770 /data")
    code, out, summary = provision(setup, *WIPE)
    assert code == 0, out
    # before: the mount root went back to 0755 on every run
    assert summary["recap"][vm_rig.HOSTNAME]["changed"] == 0, out
    assert vm.ssh("stat -c %a /data").stdout.strip() == "770"


def test_after_a_reboot_the_arrays_keep_their_names_and_mount_by_uuid(vm: vm_rig.Vm, setup: dict[str, Path]) -> None:
    uuids = {m: vm.ssh(f"findmnt -n -o UUID {m}").stdout.strip() for m in ("/scratch", "/data")}
    vm.reboot()
    for name, mount in (("scratch", "/scratch"), ("data", "/data")):
        assert vm.ssh(f"test -b /dev/md/{name}", check=False).returncode == 0, vm.ssh("ls -l /dev/md/ /dev/md*").stdout
        assert f"Name : {vm_rig.HOSTNAME}:{name}" in vm.ssh(f"mdadm --detail /dev/md/{name}").stdout
        assert vm.ssh(f"findmnt -n -o UUID {mount}").stdout.strip() == uuids[mount]
        # the mount came from the fstab's UUID= line, and that UUID is the array's filesystem
        assert vm.ssh(f"blkid -p -o value -s UUID /dev/md/{name}").stdout.strip() == uuids[mount]
    # the legacy array was taken out of mdadm.conf and the initramfs: nothing assembled it again
    assert vm.ssh("test -e /dev/md/legacy", check=False).returncode != 0
    # a mode asked for is applied, and it is the only change
    code, out, summary = provision(setup, "-e", "svdops_storage_data_mode='2775'")
    assert code == 0, out
    assert summary["recap"][vm_rig.HOSTNAME]["changed"] == 1, out
    assert vm.ssh("stat -c %a /data").stdout.strip() == "2775"


# ---------------------------------------------------------------- the whole site.yml, for real
# Every role against the stand-ins of tests/integration/standins.py (NVIDIA's CUDA repository for
# Debian 12, Miniforge and a conda channel), served on the guest's loopback. The storage arrays built
# above stay: the storage role runs too and must find nothing to do.

def test_the_host_still_boots_with_a_member_disk_missing(vm: vm_rig.Vm, setup: dict[str, Path]) -> None:
    # one NVMe of the RAID0 and one disk of the RAID6 gone while the machine was off
    vm.reboot(without=frozenset({f"nvme{vm_rig.NVME_COUNT}", f"data{vm_rig.DATA_COUNT}"}))
    # before: no nofail on /scratch, so the boot stopped in emergency mode and SSH never came back
    state = vm.ssh("systemctl is-system-running", check=False).stdout.strip()
    assert state != "maintenance", state
    assert vm.ssh("systemctl is-active emergency.target rescue.target", check=False).stdout.split() == \
        ["inactive", "inactive"]
    # the RAID6 runs degraded (md's last-resort timer starts it after 30 s) and is mounted
    deadline = time.monotonic() + 150
    while vm.ssh("findmnt -n /data", check=False).returncode != 0 and time.monotonic() < deadline:
        time.sleep(5)
    assert vm.ssh("findmnt -n -o FSTYPE /data", check=False).stdout.strip() == "xfs"
    detail = vm.ssh("mdadm --detail /dev/md/data").stdout
    assert re.search(r"State : .*degraded", detail) and "Active Devices : 3" in detail, detail
    # the RAID0 cannot run without a member: its mount is skipped, not waited for
    assert vm.ssh("findmnt -n /scratch", check=False).returncode != 0


SITE_PROFILE = """\
description: "test: the whole stack in the VM, against the stand-ins"
extends: ci-cpu
driver:
  version: "580"
  flavor: open
cuda:
  toolkit: "12.8"
  cudnn: "9"
  nccl: "*"
python:
  version: "3.11"
storage:
  scratch: {level: raid0, nvme: true, min_devices: 4}
  data: {levels: [raid5, raid6], min_devices: 4}
"""
OLD_ENTRY = ("deb [signed-by=/usr/share/keyrings/cuda-old-keyring.gpg] "
             "https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/ /")
ENV = "/opt/miniforge3/envs/svd"


@pytest.fixture(scope="module")
def site(vm: vm_rig.Vm, setup: dict[str, Path]) -> dict[str, Path]:
    if (missing := standins.missing_tools()) is not None:
        pytest.skip(missing)
    kernel = (vm.image / "ready").read_text().strip().removeprefix("vmlinuz-")
    tree = standins.ensure_standins(vm_rig.cache_dir(), kernel) / "tree"
    standins.serve_in_guest(vm.ssh_argv(), tree)
    # what a host built from an older guide has: the same repository under another signed-by, which
    # makes `apt update` fail until it is disabled
    vm.ssh(f"echo '{OLD_ENTRY}' > /etc/apt/sources.list.d/cuda.list")
    profile = vm.work / "site-test.yaml"
    profile.write_text(SITE_PROFILE)
    variables = vm.work / "site-vars.yml"
    variables.write_text(yaml.safe_dump({**standins.vars_for(tree / "svd.conda.lock"),
                                         "svdops_fabricmanager": True, "svdops_dcgm": True,
                                         # the stand-ins weigh megabytes; the guest's root has 1.5 GiB free
                                         "svdops_min_free_gib": 1}))
    # the arrays the storage tests built are not listed: the storage role says so and leaves them,
    # and these tests also run alone (-k site)
    inventory = vm.work / "site-hosts.yml"
    host = {"ansible_host": "127.0.0.1", "ansible_port": vm.port, "ansible_user": "root",
            "ansible_ssh_private_key_file": str(vm.key), "ansible_python_interpreter": "/usr/bin/python3"}
    inventory.write_text(yaml.safe_dump({"all": {"children": {"gpu": {"hosts": {vm_rig.HOSTNAME: host}}}}}))
    return {**setup, "profile": profile, "inventory": inventory, "vars": variables, "lock": tree / "svd.conda.lock"}


SITE_OPT_IN = pytest.mark.skipif(
    os.environ.get("SVDOPS_VM_SITE") == "0",
    reason="SVDOPS_VM_SITE=0: the whole site.yml in the VM (about 20 minutes) is left out",
)


def site_run(site: dict[str, Path], *args: str) -> tuple[int, str, dict]:  # type: ignore[type-arg]
    started = time.monotonic()
    # one SSH connection for the whole run: under emulation each new one costs about a second, and the
    # play has a few hundred tasks (the master exits two seconds after the run's last task)
    # (an emulated guest on a loaded machine answers SSH slowly: a longer timeout and retries)
    code, out, summary = provision(site, "-e", f"@{site['vars']}", *args, tags=(),
                                   ssh_args="-o ControlMaster=auto -o ControlPersist=2s",
                                   env_extra={"ANSIBLE_TIMEOUT": "60", "ANSIBLE_SSH_RETRIES": "3"})
    (site["runs"].parent / f"site-{len(list(site['runs'].iterdir()))}.out").write_text(
        f"{time.monotonic() - started:.0f} s\n{out}")
    return code, out, summary


def packages(vm: vm_rig.Vm) -> dict[str, str]:
    """Installed packages (dpkg's status "i", whether held or not: ii, hi) and their versions."""
    out = vm.ssh("dpkg-query -W -f '${db:Status-Abbrev} ${Package} ${Version}\\n'").stdout
    return {p: v for state, p, v in (line.split() for line in out.splitlines() if line.strip())
            if len(state) >= 2 and state[1] == "i"}


def holds(vm: vm_rig.Vm) -> set[str]:
    return set(vm.ssh("apt-mark showhold").stdout.split())


def driver_state(vm: vm_rig.Vm, branch: str) -> None:
    version = standins.DRIVERS[branch]
    installed = packages(vm)
    for name in ("nvidia-open", "nvidia-driver", "libcuda1", "nvidia-kernel-open-dkms", "nvidia-persistenced",
                 "nvidia-fabricmanager", f"nvidia-driver-pinning-{branch}"):
        assert installed.get(name) == f"{version}-1", (name, installed.get(name))
    # the proprietary modules and cuda-drivers were never asked for
    assert "nvidia-kernel-dkms" not in installed and "cuda-drivers" not in installed
    others = [b for b in standins.DRIVERS if b != branch]
    assert not [f"nvidia-driver-pinning-{b}" for b in others if f"nvidia-driver-pinning-{b}" in installed]
    pinning = vm.ssh(f"cat /etc/apt/preferences.d/nvidia-driver-pinning-{branch}").stdout
    assert f"Pin: version {branch}.*" in pinning
    assert {f"nvidia-driver-pinning-{branch}", "nvidia-open", "libcuda1", "nvidia-kernel-open-dkms",
            "nvidia-fabricmanager"} <= holds(vm)
    # what DKMS built (the stand-in's module file) is the installed version; nothing loaded it
    assert vm.ssh("modinfo -F version nvidia").stdout.strip() == version
    assert vm.ssh("test -e /sys/module/nvidia", check=False).returncode != 0


@SITE_OPT_IN
def test_site_applies_every_role_for_real(vm: vm_rig.Vm, site: dict[str, Path]) -> None:
    boot = vm.ssh("cat /proc/sys/kernel/random/boot_id").stdout
    code, out, summary = site_run(site)
    assert code == 0, out
    assert summary["recap"][vm_rig.HOSTNAME]["changed"] > 0
    # the driver changed and no reboot was allowed: none happened, and the run says one is needed
    assert summary["reboot_required"] == {vm_rig.HOSTNAME: True}, out
    assert vm.ssh("cat /proc/sys/kernel/random/boot_id").stdout == boot
    assert "skipped: reboot required first" in out, out
    driver_state(vm, "580")
    installed = packages(vm)
    assert installed["cuda-keyring"] == standins.KEYRING_VERSION
    assert installed["cuda-toolkit-12-8"] == standins.TOOLKIT_VERSION
    # cuda-12-8 would have pulled in cuda-drivers, a driver next to the held one
    assert "cuda-12-8" not in installed
    assert installed["cudnn9-cuda-12"] == "9.10.2.21-1" and "cudnn9-cuda-13" not in installed
    # the newest NCCL is built for CUDA 13.0: the host's CUDA is 12.8
    assert installed["libnccl2"] == installed["libnccl-dev"] == "2.27.7-1+cuda12.8"
    assert {"libnccl2", "libnccl-dev"} <= holds(vm)
    assert installed["datacenter-gpu-manager-4-cuda12"] == standins.DCGM_VERSION
    # the repository: one entry, at the configured URL; the older guide's entry disabled
    sources = vm.ssh("ls /etc/apt/sources.list.d").stdout.split()
    assert sorted(sources) == ["cuda-debian12-x86_64.list", "cuda.list.svdops.disabled"], sources
    entry = vm.ssh("cat /etc/apt/sources.list.d/cuda-debian12-x86_64.list").stdout
    assert entry == (f"deb [signed-by=/usr/share/keyrings/cuda-archive-keyring.gpg] "
                     f"{standins.BASE_URL}/{standins.REPO_PATH}/ /\n")
    assert "blacklist nouveau" in vm.ssh("cat /etc/modprobe.d/blacklist-nouveau.conf").stdout
    assert vm.ssh("lsinitramfs /boot/initrd.img-$(uname -r) | grep -c blacklist-nouveau.conf",
                  check=False).stdout.strip() == "1"
    dropin = vm.ssh("systemctl cat nvidia-persistenced").stdout
    assert "ExecStart=/usr/bin/nvidia-persistenced --persistence-mode --verbose" in dropin, dropin
    # enabled, and not started against a driver that is not loaded
    services = "nvidia-persistenced nvidia-fabricmanager nvidia-dcgm"
    assert vm.ssh(f"systemctl is-enabled {services}", check=False).stdout.split() == ["enabled"] * 3
    assert vm.ssh(f"systemctl is-active {services}", check=False).stdout.split() == ["inactive"] * 3
    assert "/usr/local/cuda-12.8/bin" in vm.ssh("bash -lc 'echo $PATH'").stdout
    # the environment: built from the lock with the stand-in conda, svdops from the controller's wheel
    assert vm.ssh(f"{ENV}/bin/python -c 'import sys; print(sys.prefix)'").stdout.strip() == ENV
    import svdops

    version = vm.ssh(f"{ENV}/bin/python -c 'import importlib.metadata as m; print(m.version(\"svdops\"))'").stdout
    assert version.strip() == svdops.__version__
    # what conda recorded is exactly the lock (URL and sha256 of every package)
    resolved = vm.ssh("cat /opt/miniforge3/svdops/svd.conda.resolved").stdout.splitlines()
    assert sorted(line for line in resolved if line.startswith("http")) == \
        sorted(line for line in site["lock"].read_text().splitlines() if line.startswith("http"))
    assert vm.ssh(f"test -s {ENV}/.svdops-complete", check=False).returncode == 0


@SITE_OPT_IN
def test_site_second_run_changes_nothing(vm: vm_rig.Vm, site: dict[str, Path]) -> None:
    code, out, summary = site_run(site)
    assert code == 0, out
    assert summary["recap"][vm_rig.HOSTNAME]["changed"] == 0, out
    assert "skipped: reboot required first" in out, out


@SITE_OPT_IN
def test_site_check_mode_changes_nothing(vm: vm_rig.Vm, site: dict[str, Path]) -> None:
    code, out, summary = site_run(site, "--check")
    assert code == 0, out
    assert summary["recap"][vm_rig.HOSTNAME]["changed"] == 0, out


@SITE_OPT_IN
def test_site_moves_the_driver_to_a_newer_branch(vm: vm_rig.Vm, site: dict[str, Path]) -> None:
    boot = vm.ssh("cat /proc/sys/kernel/random/boot_id").stdout
    code, out, summary = site_run(site, "--driver-branch", "590")
    assert code == 0, out
    assert summary["recap"][vm_rig.HOSTNAME]["changed"] > 0
    assert summary["reboot_required"] == {vm_rig.HOSTNAME: True}, out
    assert vm.ssh("cat /proc/sys/kernel/random/boot_id").stdout == boot
    driver_state(vm, "590")
    assert "nvidia-driver-pinning-580" not in holds(vm)
    assert vm.ssh("test -e /etc/apt/preferences.d/nvidia-driver-pinning-580", check=False).returncode != 0
    # the libraries stayed where they were
    assert packages(vm)["libnccl2"] == "2.27.7-1+cuda12.8"
