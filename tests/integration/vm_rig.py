"""A Debian 12 qemu VM with four emulated NVMe disks and two SCSI data disks, reached over SSH.

The `storage` role needs md, NVMe and a reboot, none of which this machine's kernel has (see
shared RIGS.md), so it runs against this VM. The root filesystem is built once with debootstrap into
a cache folder ($SVDOPS_VM_CACHE, default /var/cache/svdops-vm) and reused: a rerun only copies the
image (sparse) and boots it. qemu runs under software emulation (`-accel tcg -cpu max`): /dev/kvm on
these machines is not usable by qemu.

The guest boots a kernel and initramfs passed to qemu on the command line. A reboot is a guest
poweroff followed by a fresh qemu whose initramfs is read back out of the guest's own disk (debugfs),
so what the guest wrote with update-initramfs (mdadm.conf included) is what the next boot uses, as
it would be on real hardware with a boot loader.

Every qemu we start is stopped by the PID in its pid file, after checking that PID is still our qemu.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

CACHE_ENV = "SVDOPS_VM_CACHE"
DEFAULT_CACHE = Path("/var/cache/svdops-vm")
MIRROR_ENV = "SVDOPS_VM_MIRROR"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
QEMU = "qemu-system-x86_64"
PACKAGES = ("systemd-sysv", "udev", "kmod", "openssh-server", "mdadm", "xfsprogs", "linux-image-amd64",
            "initramfs-tools", "iproute2", "python3", "python3-apt", "nvme-cli", "util-linux", "procps",
            # preflight installs the running kernel's headers and the flavour's metapackage (DKMS builds
            # against them): the real Debian packages, so that apt finds them installed offline
            "linux-headers-amd64")
# changing the recipe (packages, guest config) must invalidate a cached image
RECIPE_VERSION = "4"
ROOT_SIZE = "3G"
NVME_COUNT, NVME_SIZE_MIB = 4, 256
DATA_COUNT, DATA_SIZE_MIB = 4, 320  # XFS needs 300 MiB (the test puts one on a single disk)
HOSTNAME = "svdvm"


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)


def skip_reason() -> str | None:
    """Why the VM cannot run here, or None."""
    if os.geteuid() != 0:
        return "the VM rig needs root (debootstrap, image build)"
    for tool in (QEMU, "qemu-img", "debootstrap", "mkfs.ext4", "debugfs", "ssh", "ssh-keygen"):
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            return f"{tool} is missing: run scripts/setup-dev.sh (installs qemu-system-x86 qemu-utils debootstrap)"
    return None


def nvme_serial(i: int) -> str:
    return f"SVDNVME{i:04d}"


def data_serial(i: int) -> str:
    return f"SVDDATA{i:04d}"


def nvme_by_id(i: int) -> str:
    # qemu's NVMe controller reports the model "QEMU NVMe Ctrl"; udev turns the spaces into underscores
    return f"/dev/disk/by-id/nvme-QEMU_NVMe_Ctrl_{nvme_serial(i)}"


def data_by_id(i: int) -> str:
    return f"/dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_{data_serial(i)}"


# ---------------------------------------------------------------- the cached image


def _recipe_hash(mirror: str) -> str:
    text = "\n".join([RECIPE_VERSION, mirror, *PACKAGES, HOSTNAME])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=True, text=True, capture_output=True, **kwargs)  # type: ignore[call-overload,no-any-return]


def ensure_image(log: Path | None = None) -> Path:
    """The cached base image folder (base.img, vmlinuz, id_ed25519), built on first use (~3 min)."""
    mirror = os.environ.get(MIRROR_ENV) or DEFAULT_MIRROR
    root = cache_dir()
    image = root / f"debian12-{_recipe_hash(mirror)}"
    if (image / "ready").exists():
        return image
    root.mkdir(parents=True, exist_ok=True)
    building = image.with_name(image.name + ".build")
    if building.exists():
        shutil.rmtree(building)  # a build killed half-way: start over
    building.mkdir()
    rootfs = building / "rootfs"
    out = (log or building / "debootstrap.log").open("w")
    try:
        subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", "bookworm",
                        str(rootfs), mirror], check=True, stdout=out, stderr=subprocess.STDOUT)
    finally:
        out.close()
    _configure_guest(rootfs, building)
    boot = rootfs / "boot"
    kernel = next(boot.glob("vmlinuz-*"))
    shutil.copy(kernel, building / "vmlinuz")
    _run(["mkfs.ext4", "-q", "-F", "-L", "root", "-d", str(rootfs), str(building / "base.img"), ROOT_SIZE])
    shutil.rmtree(rootfs)
    (building / "ready").write_text(kernel.name + "\n")
    if image.exists():
        shutil.rmtree(image)
    building.rename(image)
    return image


def _configure_guest(rootfs: Path, building: Path) -> None:
    key = building / "id_ed25519"
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "svdops-vm-test", "-f", str(key)])
    ssh_dir = rootfs / "root" / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    shutil.copy(key.with_suffix(".pub"), ssh_dir / "authorized_keys")
    (ssh_dir / "authorized_keys").chmod(0o600)
    (rootfs / "etc" / "hostname").write_text(HOSTNAME + "\n")
    (rootfs / "etc" / "hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {HOSTNAME}\n")
    (rootfs / "etc" / "fstab").write_text("/dev/vda / ext4 defaults 0 1\n")
    network = rootfs / "etc" / "systemd" / "network"
    network.mkdir(parents=True, exist_ok=True)
    (network / "10-en.network").write_text("[Match]\nName=en*\n\n[Network]\nDHCP=ipv4\n")
    wants = rootfs / "etc" / "systemd" / "system" / "multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / "systemd-networkd.service"
    if not link.exists():
        link.symlink_to("/lib/systemd/system/systemd-networkd.service")
    # the guest is offline (restrict=on): apt must not try to reach a mirror if a role asks it to
    (rootfs / "etc" / "apt" / "sources.list").write_text("")
    # update-initramfs inside the guest runs under software emulation: with MODULES=most it takes
    # minutes (a shell hook per module); the guest's own modules are enough, and the mdadm hook adds
    # the md personalities itself. The initramfs built during debootstrap (first boot) is unaffected.
    initramfs = rootfs / "etc" / "initramfs-tools" / "conf.d"
    initramfs.mkdir(parents=True, exist_ok=True)
    (initramfs / "svdops-vm.conf").write_text("MODULES=dep\n")
    conf = rootfs / "etc" / "ssh" / "sshd_config.d"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "svdops.conf").write_text("PermitRootLogin prohibit-password\nUseDNS no\n")


# ---------------------------------------------------------------- a running VM


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Vm:
    image: Path
    work: Path
    port: int = field(default_factory=_free_port)
    boots: int = 0
    # disks left out of the next boot, as if dead or pulled: "nvme4", "data2"
    detached: frozenset[str] = frozenset()

    @property
    def key(self) -> Path:
        return self.image / "id_ed25519"

    @property
    def root_img(self) -> Path:
        return self.work / "root.img"

    @property
    def pid_file(self) -> Path:
        return self.work / "qemu.pid"

    def ssh_argv(self, *command: str) -> list[str]:
        return ["ssh", "-q", "-i", str(self.key), "-p", str(self.port), "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "ConnectTimeout=5", "root@127.0.0.1", *command]

    def ssh(self, command: str, *, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(self.ssh_argv(command), capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise RuntimeError(f"vm: `{command}` exited {result.returncode}: {result.stderr.strip()}")
        return result

    def inventory(self, path: Path, extra: dict[str, str] | None = None) -> Path:
        variables = {"ansible_host": "127.0.0.1", "ansible_port": str(self.port), "ansible_user": "root",
                     "ansible_ssh_private_key_file": str(self.key),
                     "ansible_python_interpreter": "/usr/bin/python3", **(extra or {})}
        line = " ".join(f"{k}={v}" for k, v in variables.items())
        path.write_text(f"[gpu]\n{HOSTNAME} {line}\n")
        return path

    # -------------------------------------------------------------- lifecycle

    def create_disks(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cp", "--sparse=always", str(self.image / "base.img"), str(self.root_img)], check=True)
        for i in range(1, NVME_COUNT + 1):
            _run(["qemu-img", "create", "-q", "-f", "raw", str(self.work / f"nvme{i}.img"), f"{NVME_SIZE_MIB}M"])
        for i in range(1, DATA_COUNT + 1):
            _run(["qemu-img", "create", "-q", "-f", "raw", str(self.work / f"data{i}.img"), f"{DATA_SIZE_MIB}M"])

    def _initrd_from_disk(self) -> Path:
        kernel_name = (self.image / "ready").read_text().strip()
        version = kernel_name.removeprefix("vmlinuz-")
        initrd = self.work / f"initrd-{self.boots}.img"
        _run(["debugfs", "-R", f"dump /boot/initrd.img-{version} {initrd}", str(self.root_img)])
        if not initrd.exists() or initrd.stat().st_size == 0:
            raise RuntimeError(f"vm: no /boot/initrd.img-{version} in the guest image")
        return initrd

    def start(self, *, timeout: float = 240) -> None:
        initrd = self._initrd_from_disk()
        argv = [QEMU, "-accel", "tcg", "-cpu", "max", "-m", "2048", "-smp", "2", "-display", "none",
                "-serial", f"file:{self.work / f'serial-{self.boots}.log'}", "-daemonize",
                "-pidfile", str(self.pid_file),
                "-kernel", str(self.image / "vmlinuz"), "-initrd", str(initrd),
                "-append", "root=/dev/vda rw console=ttyS0 net.ifnames=1",
                "-drive", f"file={self.root_img},format=raw,if=virtio",
                "-netdev", f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{self.port}-:22",
                "-device", "virtio-net-pci,netdev=n0"]
        for i in range(1, NVME_COUNT + 1):
            if f"nvme{i}" in self.detached:
                continue
            argv += ["-drive", f"file={self.work / f'nvme{i}.img'},format=raw,if=none,id=nv{i}",
                     "-device", f"nvme,serial={nvme_serial(i)},drive=nv{i}"]
        # the data disks sit on SCSI like HDDs in a server; on virtio-blk they would race the root disk
        # for the name /dev/vda
        argv += ["-device", "virtio-scsi-pci,id=scsi0"]
        for i in range(1, DATA_COUNT + 1):
            if f"data{i}" in self.detached:
                continue
            argv += ["-drive", f"file={self.work / f'data{i}.img'},format=raw,if=none,id=dd{i}",
                     "-device", f"scsi-hd,bus=scsi0.0,serial={data_serial(i)},drive=dd{i}"]
        self.pid_file.unlink(missing_ok=True)
        _run(argv)
        self.boots += 1
        self.wait_for_ssh(timeout)

    def wait_for_ssh(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pid() is None:
                raise RuntimeError(f"vm: qemu exited during boot; see {self.work}/serial-*.log")
            with contextlib.suppress(subprocess.TimeoutExpired):
                if self.ssh("true", check=False, timeout=15).returncode == 0:
                    return
            time.sleep(2)
        raise RuntimeError(f"vm: no SSH within {timeout:.0f} s; see {self.work}/serial-*.log")

    def pid(self) -> int | None:
        """qemu's PID while it runs (checked against /proc, so a reused PID is never ours)."""
        try:
            pid = int(self.pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if QEMU.encode() in cmdline and str(self.pid_file).encode() in cmdline else None

    def reboot(self, *, timeout: float = 240, without: frozenset[str] = frozenset()) -> None:
        """Power the guest off cleanly, then boot it again with the initramfs it now has on disk, and
        without the disks named in `without` (a member that died while the machine was off)."""
        self.ssh("systemctl poweroff", check=False, timeout=30)
        deadline = time.monotonic() + 120
        while self.pid() is not None and time.monotonic() < deadline:
            time.sleep(1)
        if self.pid() is not None:
            self.stop()
        self.detached = without
        self.start(timeout=timeout)

    def stop(self) -> None:
        pid = self.pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while self.pid() is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        if self.pid() is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def running_vm(work: Path) -> Iterator[Vm]:
    work.mkdir(parents=True, exist_ok=True)
    vm = Vm(ensure_image(work / "debootstrap.log"), work)
    vm.create_disks()
    try:
        vm.start()
        yield vm
    finally:
        vm.stop()
