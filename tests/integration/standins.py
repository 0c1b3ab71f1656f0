"""Stand-ins for what the VM cannot reach: NVIDIA's CUDA apt repository and Miniforge with a conda channel.

Everything here is a STAND-IN, built in the test session (and cached next to the VM image, keyed by
this file's text and the guest kernel): nothing comes from NVIDIA or conda-forge, and nothing runs a
GPU. What each imitates:

- `cuda/repos/debian12/x86_64/`: NVIDIA's CUDA repository for Debian 12
  (https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/), a flat apt repository
  (`deb [signed-by=...] URL/ /`) with Packages, Release, Release.gpg and InRelease signed by a key
  generated here, and `cuda-keyring_1.1-1_all.deb` carrying that key as
  /usr/share/keyrings/cuda-archive-keyring.gpg plus the sources entry NVIDIA's keyring installs.
  The packages are empty, built with dpkg-deb, with NVIDIA's names, versions and dependency shapes:
  two driver branches in the scheme NVIDIA uses on Debian (nvidia-driver-pinning-<branch> selects the
  branch; nvidia-open / cuda-drivers, nvidia-driver, libcuda1, nvidia-smi, nvidia-persistenced,
  nvidia-kernel-open-dkms / nvidia-kernel-dkms), cuda-toolkit-12-8 (and cuda-12-8, which drags in
  cuda-drivers: the role must not install it), cudnn9-cuda-12/13, libnccl2/libnccl-dev built for three
  CUDA versions, nvidia-fabricmanager, datacenter-gpu-manager-4-core/-cuda12/-cuda13.
  Maintainer scripts only run depmod. The DKMS stand-in ships what DKMS would leave behind, an
  `updates/dkms/nvidia.ko` for the guest's kernel, so `modinfo nvidia` reports the installed driver
  version as on a real host; it is an ELF object holding a .modinfo section and nothing else, which
  no GPU ever asks the kernel to load. There is no nvidia-smi binary: validate meets a GPU-less host.
- `miniforge/<version>/Miniforge3-<version>-Linux-x86_64.sh` (+ `.sha256`): Miniforge's installer, a
  shell script with an embedded payload, `-b -p PREFIX` batch interface. The payload is not conda: it
  lays down a prefix whose `bin/conda` is a small Python program (run by the guest's Debian python3)
  that does what the conda role asks of conda: `create --file` from an explicit lock (download each
  URL, check its sha256, unpack the .tar.bz2 into the prefix, record it in conda-meta/),
  `list --explicit --sha256`, `--version`; `env create` (a solver) is refused.
- `conda/`: a conda channel (linux-64/ and noarch/ with repodata.json) holding two packages in conda's
  .tar.bz2 format: `python` (a venv-style prefix over the guest's Debian python3.11, not conda-forge's
  CPython build) and `pip` (the pip wheel bundled with the controller's Python, unpacked).
- `pypi/simple/pip/` and `whl/cpu/torch/`: empty index pages, so preflight's mirror check has
  something to ask; the environment is built from the conda lock without a pip lock.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import textwrap
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path

REPO_PATH = "cuda/repos/debian12/x86_64"
KEYRING_VERSION = "1.1-1"
# real releases of each branch (NVIDIA's 580 and 590 production branches)
DRIVERS = {"580": "580.95.05", "590": "590.44.01"}
CUDA = "12.8"
TOOLKIT_VERSION = "12.8.1-1"
CUDNN_VERSIONS = ("9.8.0.87-1", "9.10.2.21-1")
# each NCCL release is built per CUDA; the newest build is for another CUDA than the host's
NCCL_BUILDS = ("2.26.2-1+cuda12.8", "2.27.7-1+cuda12.8", "2.27.7-1+cuda12.9", "2.28.3-1+cuda13.0")
DCGM_VERSION = "1:4.2.3-1"
MINIFORGE_VERSION = "24.11.3-0"
PYTHON_VERSION = "3.11.2"  # Debian 12's python3.11
PORT = 8080
GUEST_ROOT = "/srv/svdops-standin"
BASE_URL = f"http://127.0.0.1:{PORT}"
SYSTEMD = "/lib/systemd/system"


def missing_tools() -> str | None:
    for tool in ("dpkg-deb", "dpkg-scanpackages", "gpg", "gcc"):
        if shutil.which(tool) is None:
            return f"{tool} is missing (dpkg-dev, gnupg, gcc build the stand-in repository)"
    return None


# ---------------------------------------------------------------- debs


@dataclass
class Deb:
    name: str
    version: str
    arch: str = "amd64"
    depends: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes | str] = field(default_factory=dict)
    postinst: str = ""
    postrm: str = ""
    conffiles: tuple[str, ...] = ()
    description: str = ""

    @property
    def filename(self) -> str:
        return f"{self.name}_{self.version.split(':')[-1]}_{self.arch}.deb"


def _build_deb(deb: Deb, out: Path, scratch: Path) -> None:
    root = scratch / f"{deb.name}-{deb.version.replace(':', '_')}"
    control_dir = root / "DEBIAN"
    control_dir.mkdir(parents=True)
    fields = {"Package": deb.name, "Version": deb.version, "Architecture": deb.arch,
              "Maintainer": "svdops tests <stand-in@example.invalid>", "Section": "multiverse/devel",
              "Priority": "optional"}
    if deb.depends:
        fields["Depends"] = deb.depends
    fields.update(deb.extra)
    fields["Description"] = (deb.description or f"stand-in for NVIDIA's {deb.name}") + \
        "\n svdops test stand-in: an empty package with NVIDIA's name, version and dependencies."
    (control_dir / "control").write_text("".join(f"{k}: {v}\n" for k, v in fields.items()))
    for script, body in (("postinst", deb.postinst), ("postrm", deb.postrm)):
        if body:
            (control_dir / script).write_text(f"#!/bin/sh\nset -e\n{body}\nexit 0\n")
            (control_dir / script).chmod(0o755)
    if deb.conffiles:
        (control_dir / "conffiles").write_text("".join(f"{c}\n" for c in deb.conffiles))
    for path, content in deb.files.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
        target.chmod(0o644)
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(out / deb.filename)],
                   check=True, capture_output=True)


def _module_object(version: str, scratch: Path) -> bytes:
    """What DKMS leaves in updates/dkms/: an ELF object whose .modinfo names the driver version. No code."""
    src = scratch / f"nvidia-{version}.c"
    fields = [f"version={version}", "license=Dual MIT/GPL", "description=NVIDIA kernel module (svdops stand-in)",
              "name=nvidia", "vermagic=svdops-stand-in"]
    body = "".join(f'static const char f{i}[] __attribute__((section(".modinfo"), used, aligned(1))) = "{f}";\n'
                   for i, f in enumerate(fields))
    src.write_text(body)
    obj = src.with_suffix(".ko")
    subprocess.run(["gcc", "-c", "-o", str(obj), str(src)], check=True, capture_output=True)
    return obj.read_bytes()


PERSISTENCED_UNIT = """\
[Unit]
Description=NVIDIA Persistence Daemon
Wants=syslog.target
StopWhenUnneeded=true
Before=systemd-backlight@backlight:nvidia_0.service

[Service]
Type=forking
ExecStart=/usr/bin/nvidia-persistenced --user nvidia-persistenced --no-persistence-mode --verbose
ExecStopPost=/bin/rm -rf /var/run/nvidia-persistenced

[Install]
WantedBy=multi-user.target
"""

FABRICMANAGER_UNIT = """\
[Unit]
Description=NVIDIA fabric manager service
After=network-online.target
Requires=network-online.target

[Service]
User=root
PrivateTmp=false
Type=forking
ExecStart=/usr/bin/nv-fabricmanager -c /usr/share/nvidia/nvswitch/fabricmanager.cfg
LimitCORE=infinity

[Install]
WantedBy=multi-user.target
"""

DCGM_UNIT = """\
[Unit]
Description=NVIDIA DCGM service
Conflicts=dcgm.service

[Service]
User=root
PrivateTmp=false
Environment="DCGM_HOME_DIR=/var/log/nvidia-dcgm"
ExecStart=/usr/bin/nv-hostengine -n --service-account nvidia-dcgm
Restart=on-abort

[Install]
WantedBy=multi-user.target
"""

# the driver packages the pinning package keeps on its branch
PINNED = ("nvidia-open", "cuda-drivers", "nvidia-driver", "libcuda1", "nvidia-smi", "nvidia-persistenced",
          "nvidia-kernel-support",
          "nvidia-kernel-open-dkms", "nvidia-kernel-dkms", "nvidia-fabricmanager")


def cuda_packages(kernel: str, scratch: Path, keyring: bytes) -> list[Deb]:
    debs: list[Deb] = [Deb(
        "cuda-keyring", KEYRING_VERSION, arch="all",
        files={"/usr/share/keyrings/cuda-archive-keyring.gpg": keyring,
               "/etc/apt/sources.list.d/cuda-debian12-x86_64.list":
                   "deb [signed-by=/usr/share/keyrings/cuda-archive-keyring.gpg] "
                   "https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/ /\n"},
        conffiles=("/etc/apt/sources.list.d/cuda-debian12-x86_64.list",),
        description="stand-in for NVIDIA's cuda-keyring (GPG key and sources entry of the CUDA repository)")]
    modules = f"/lib/modules/{kernel}/updates/dkms"
    for branch, version in DRIVERS.items():
        v = f"{version}-1"
        ko = _module_object(version, scratch)
        preferences = (f"# stand-in for NVIDIA's nvidia-driver-pinning-{branch}: keeps the driver on branch {branch}\n"
                       f"Package: {' '.join(PINNED)}\nPin: version {branch}.*\nPin-Priority: 1000\n")
        depmod = f"depmod -a {kernel} || true"
        debs += [
            Deb(f"nvidia-driver-pinning-{branch}", v, arch="all", extra={
                "Provides": "nvidia-driver-pinning", "Conflicts": "nvidia-driver-pinning"},
                files={f"/etc/apt/preferences.d/nvidia-driver-pinning-{branch}": preferences}),
            Deb("libcuda1", v), Deb("nvidia-smi", v), Deb("nvidia-kernel-support", v),
            Deb("nvidia-persistenced", v, files={f"{SYSTEMD}/nvidia-persistenced.service": PERSISTENCED_UNIT}),
            Deb("nvidia-kernel-open-dkms", v, depends=f"nvidia-kernel-support (= {v})",
                extra={"Provides": "nvidia-kernel-dkms-any", "Conflicts": "nvidia-kernel-dkms"},
                files={f"{modules}/nvidia.ko": ko}, postinst=depmod, postrm=depmod),
            Deb("nvidia-kernel-dkms", v, depends=f"nvidia-kernel-support (= {v})",
                extra={"Provides": "nvidia-kernel-dkms-any", "Conflicts": "nvidia-kernel-open-dkms"},
                files={f"{modules}/nvidia.ko": ko}, postinst=depmod, postrm=depmod),
            Deb("nvidia-driver", v, depends=f"libcuda1 (= {v}), nvidia-smi (= {v}), nvidia-persistenced (= {v}), "
                                            f"nvidia-kernel-open-dkms (= {v}) | nvidia-kernel-dkms (= {v})"),
            Deb("nvidia-open", v, depends=f"nvidia-driver (= {v}), nvidia-kernel-open-dkms (= {v})"),
            Deb("cuda-drivers", v, depends=f"nvidia-driver (= {v}), nvidia-kernel-dkms (= {v})"),
            Deb("nvidia-fabricmanager", v, files={f"{SYSTEMD}/nvidia-fabricmanager.service": FABRICMANAGER_UNIT}),
        ]
    major, minor = CUDA.split(".")
    home = f"/usr/local/cuda-{CUDA}"
    debs += [
        Deb(f"cuda-nvcc-{major}-{minor}", "12.8.93-1", files={f"{home}/bin/.stand-in": "nvcc is not here\n"}),
        Deb(f"cuda-cudart-{major}-{minor}", "12.8.90-1", files={f"{home}/lib64/.stand-in": "libcudart is not here\n"}),
        Deb(f"cuda-toolkit-{major}-{minor}", TOOLKIT_VERSION,
            depends=f"cuda-nvcc-{major}-{minor} (>= 12.8.93), cuda-cudart-{major}-{minor} (>= 12.8.90)"),
        # NVIDIA's cuda-X-Y pulls cuda-drivers in: a driver of NVIDIA's choosing next to the held one
        Deb(f"cuda-{major}-{minor}", TOOLKIT_VERSION,
            depends=f"cuda-toolkit-{major}-{minor} (>= {TOOLKIT_VERSION}), cuda-drivers (>= 570.124.06)"),
    ]
    for cv in CUDNN_VERSIONS:
        for cmaj in ("12", "13"):
            debs += [
                Deb(f"libcudnn9-cuda-{cmaj}", cv), Deb(f"libcudnn9-headers-cuda-{cmaj}", cv),
                Deb(f"libcudnn9-dev-cuda-{cmaj}", cv,
                    depends=f"libcudnn9-cuda-{cmaj} (= {cv}), libcudnn9-headers-cuda-{cmaj} (= {cv})"),
                Deb(f"cudnn9-cuda-{cmaj}", cv,
                    depends=f"libcudnn9-cuda-{cmaj} (= {cv}), libcudnn9-dev-cuda-{cmaj} (= {cv})"),
            ]
    for build in NCCL_BUILDS:
        debs += [Deb("libnccl2", build), Deb("libnccl-dev", build, depends=f"libnccl2 (= {build})")]
    debs.append(Deb("datacenter-gpu-manager-4-core", DCGM_VERSION,
                    files={f"{SYSTEMD}/nvidia-dcgm.service": DCGM_UNIT}))
    for cmaj in ("12", "13"):
        debs.append(Deb(f"datacenter-gpu-manager-4-cuda{cmaj}", DCGM_VERSION,
                        depends=f"datacenter-gpu-manager-4-core (= {DCGM_VERSION})"))
    return debs


def _gpg(home: Path, *args: str, stdin: bytes | None = None) -> bytes:
    return subprocess.run(["gpg", "--homedir", str(home), "--batch", "--yes", "--pinentry-mode", "loopback",
                           "--passphrase", "", *args], input=stdin, check=True, capture_output=True).stdout


def build_cuda_repo(root: Path, kernel: str, scratch: Path) -> None:
    home = scratch / "gnupg"
    home.mkdir(mode=0o700)
    _gpg(home, "--quick-gen-key", "svdops test stand-in for the CUDA repository <cudatools@example.invalid>",
         "ed25519", "sign", "never")
    keyring = _gpg(home, "--export")
    repo = root / REPO_PATH
    repo.mkdir(parents=True)
    for deb in cuda_packages(kernel, scratch, keyring):
        _build_deb(deb, repo, scratch)
    packages = subprocess.run(["dpkg-scanpackages", "--multiversion", ".", "/dev/null"], cwd=repo, check=True,
                              capture_output=True).stdout
    (repo / "Packages").write_bytes(packages)
    (repo / "Packages.gz").write_bytes(gzip.compress(packages, mtime=0))
    lines = ["Origin: NVIDIA", "Label: NVIDIA CUDA (svdops test stand-in)", "Architecture: x86_64",
             f"Date: {formatdate(time.time(), usegmt=True)}", "SHA256:"]
    for name in ("Packages", "Packages.gz"):
        data = (repo / name).read_bytes()
        lines.append(f" {hashlib.sha256(data).hexdigest()} {len(data)} {name}")
    (repo / "Release").write_text("\n".join(lines) + "\n")
    _gpg(home, "--armor", "--detach-sign", "--output", str(repo / "Release.gpg"), str(repo / "Release"))
    _gpg(home, "--clearsign", "--output", str(repo / "InRelease"), str(repo / "Release"))


# ---------------------------------------------------------------- Miniforge and the conda channel

CONDA_STANDIN = r'''#!/usr/bin/python3
"""svdops test STAND-IN for conda (Miniforge): the subcommands svdops' conda role uses, nothing more.

create --yes --quiet --prefix P --file LOCK   LOCK is an explicit lock (@EXPLICIT, URL#sha256 lines)
list --explicit --sha256 --prefix P
--version
"""
import hashlib, json, os, sys, tarfile, urllib.request

VERSION = "conda 24.11.3 (svdops stand-in)"


def fail(msg, code=1):
    print(f"CondaError (stand-in): {msg}", file=sys.stderr)
    sys.exit(code)


def option(args, name):
    if name not in args:
        fail(f"{name} is required by this stand-in", 2)
    return args[args.index(name) + 1]


def create(args):
    prefix, lock = option(args, "--prefix"), option(args, "--file")
    lines = [l.strip() for l in open(lock) if l.strip() and not l.startswith("#")]
    if not lines or lines[0] != "@EXPLICIT":
        fail(f"{lock}: this stand-in installs explicit locks only (no solver)")
    meta = os.path.join(prefix, "conda-meta")
    os.makedirs(meta, exist_ok=True)
    for line in lines[1:]:
        url, _, digest = line.partition("#")
        digest = digest.removeprefix("sha256:")
        data = urllib.request.urlopen(url, timeout=60).read()
        if not digest or hashlib.sha256(data).hexdigest() != digest:
            fail(f"{url}: sha256 mismatch or missing")
        name = url.rsplit("/", 1)[-1]
        with tarfile.open(fileobj=__import__("io").BytesIO(data), mode="r:bz2") as tar:
            members = [m for m in tar.getmembers() if not m.name.startswith("info/")]
            # Debian 12's Python 3.11.2 predates extraction filters: refuse what they would
            for m in members:
                if m.name.startswith("/") or ".." in m.name.split("/") or m.islnk() or m.isdev():
                    fail(f"{url}: refusing {m.name!r}")
            tar.extractall(prefix, members=members)
            index = json.load(tar.extractfile("info/index.json"))
        index.update(url=url, sha256=digest, files=[m.name for m in members if not m.isdir()])
        with open(os.path.join(meta, name.removesuffix(".tar.bz2") + ".json"), "w") as f:
            json.dump(index, f)
    with open(os.path.join(meta, "history"), "a") as f:
        f.write(f"# cmd: conda create --prefix {prefix} --file {lock}\n")


def listing(args):
    prefix = option(args, "--prefix")
    if "--explicit" not in args:
        fail("this stand-in lists --explicit only", 2)
    print("# This file may be used to create an environment using:")
    print("# $ conda create --name <env> --file <this file>")
    print("# platform: linux-64")
    print("@EXPLICIT")
    meta = os.path.join(prefix, "conda-meta")
    for name in sorted(os.listdir(meta)):
        if name.endswith(".json"):
            record = json.load(open(os.path.join(meta, name)))
            print(f"{record['url']}#sha256:{record['sha256']}" if "--sha256" in args else record["url"])


def main(argv):
    if argv[:1] == ["--version"]:
        print(VERSION)
    elif argv[:1] == ["create"]:
        create(argv[1:])
    elif argv[:1] == ["list"]:
        listing(argv[1:])
    else:
        fail(f"`conda {' '.join(argv)}` is not part of this stand-in (explicit locks only: no solver)", 2)


main(sys.argv[1:])
'''

INSTALLER_HEAD = """#!/bin/sh
# svdops test STAND-IN for the Miniforge3 installer: a shell script with an embedded payload and
# Miniforge's batch interface (-b -p PREFIX). The payload is a stand-in conda, not conda.
set -eu
PREFIX="$HOME/miniforge3"
while getopts "bfp:u" opt; do
    case "$opt" in
        b|f|u) ;;
        p) PREFIX="$OPTARG" ;;
        *) echo "usage: $0 [-b] [-p PREFIX]" >&2; exit 2 ;;
    esac
done
if [ -e "$PREFIX" ]; then
    echo "ERROR: File or directory already exists: '$PREFIX'" >&2
    exit 1
fi
echo "PREFIX=$PREFIX"
mkdir -p "$PREFIX"
SKIP=$(awk '/^__SVDOPS_PAYLOAD__$/ { print NR + 1; exit 0 }' "$0")
tail -n +"$SKIP" "$0" | tar -xzf - -C "$PREFIX"
echo "installation finished."
exit 0
__SVDOPS_PAYLOAD__
"""


def _tar_add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    tar.addfile(info, io.BytesIO(data))


def _tar_link(tar: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mtime = tarfile.SYMTYPE, target, 0
    tar.addfile(info)


def build_miniforge(root: Path) -> Path:
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w:gz") as tar:
        _tar_add(tar, "bin/conda", CONDA_STANDIN.encode(), 0o755)
        _tar_add(tar, "conda-meta/history", b"# svdops stand-in for Miniforge's base environment\n")
        _tar_add(tar, "envs/.keep", b"")
    name = f"Miniforge3-{MINIFORGE_VERSION}-Linux-x86_64.sh"
    folder = root / "miniforge" / MINIFORGE_VERSION
    folder.mkdir(parents=True)
    installer = folder / name
    installer.write_bytes(INSTALLER_HEAD.encode() + payload.getvalue())
    (folder / (name + ".sha256")).write_text(f"{hashlib.sha256(installer.read_bytes()).hexdigest()}  {name}\n")
    return installer


def _conda_package(channel: Path, name: str, version: str, build: str, files: dict[str, bytes],
                   links: dict[str, str], depends: list[str]) -> dict[str, object]:
    index = {"name": name, "version": version, "build": build, "build_number": 0, "depends": depends,
             "subdir": "linux-64", "arch": "x86_64", "platform": "linux", "license": "stand-in", "timestamp": 0}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        _tar_add(tar, "info/index.json", json.dumps(index, indent=1).encode())
        _tar_add(tar, "info/files", "".join(f"{p}\n" for p in [*files, *links]).encode())
        for path, data in files.items():
            _tar_add(tar, path, data, 0o755 if path.startswith("bin/") else 0o644)
        for path, target in links.items():
            _tar_link(tar, path, target)
    data = bz2.compress(buf.getvalue())
    filename = f"{name}-{version}-{build}.tar.bz2"
    (channel / "linux-64" / filename).write_bytes(data)
    return {filename: {**index, "sha256": hashlib.sha256(data).hexdigest(), "md5": hashlib.md5(data).hexdigest(),
                       "size": len(data)}}


def _bundled_pip_wheel() -> Path:
    import ensurepip

    bundled = Path(ensurepip.__file__).parent / "_bundled"
    wheels = sorted(bundled.glob("pip-*.whl"))
    if not wheels:
        raise RuntimeError(f"no pip wheel bundled with this Python ({bundled})")
    return wheels[-1]


def build_conda_channel(root: Path) -> Path:
    import zipfile

    channel = root / "conda"
    (channel / "linux-64").mkdir(parents=True)
    (channel / "noarch").mkdir()
    short = ".".join(PYTHON_VERSION.split(".")[:2])
    site = f"lib/python{short}/site-packages"
    records: dict[str, object] = {}
    # a venv over the guest's interpreter: pyvenv.cfg makes the prefix its own sys.prefix
    records.update(_conda_package(
        channel, "python", PYTHON_VERSION, "0_svdops_standin",
        {"pyvenv.cfg": f"home = /usr/bin\ninclude-system-site-packages = false\nversion = {PYTHON_VERSION}\n".encode(),
         f"{site}/.stand-in": b"svdops stand-in python: a venv over Debian's /usr/bin/python3.11\n"},
        {f"bin/python{short}": f"/usr/bin/python{short}", "bin/python3": f"python{short}",
         "bin/python": f"python{short}"},
        []))
    wheel = _bundled_pip_wheel()
    pip_version = wheel.name.split("-")[1]
    with zipfile.ZipFile(wheel) as zf:
        pip_files = {f"{site}/{n}": zf.read(n) for n in zf.namelist() if not n.endswith("/")}
    records.update(_conda_package(channel, "pip", pip_version, "pyh_svdops_standin", pip_files, {},
                                  [f"python >={short}"]))
    (channel / "linux-64" / "repodata.json").write_text(json.dumps(
        {"info": {"subdir": "linux-64"}, "packages": records, "packages.conda": {}}, indent=1))
    (channel / "noarch" / "repodata.json").write_text(json.dumps(
        {"info": {"subdir": "noarch"}, "packages": {}, "packages.conda": {}}))
    lock = ["# platform: linux-64", "@EXPLICIT"]
    for filename in sorted(records, key=lambda f: (not f.startswith("python-"), f)):
        record = records[filename]
        assert isinstance(record, dict)
        lock.append(f"{BASE_URL}/conda/linux-64/{filename}#sha256:{record['sha256']}")
    (root / "svd.conda.lock").write_text("\n".join(lock) + "\n")
    return channel


def build_indexes(root: Path) -> None:
    for folder in ("pypi/simple/pip", "whl/cpu/torch"):
        (root / folder).mkdir(parents=True)
        (root / folder / "index.html").write_text("<!DOCTYPE html><html><body><!-- svdops stand-in --></body></html>\n")


# ---------------------------------------------------------------- cache


def ensure_standins(cache: Path, kernel: str) -> Path:
    """The stand-in tree for a guest running `kernel`, built once into `cache` (a few seconds)."""
    key = hashlib.sha256(Path(__file__).read_bytes() + kernel.encode()).hexdigest()[:16]
    done = cache / f"standins-{key}"
    if (done / "ready").exists():
        return done
    building = done.with_name(done.name + ".build")
    if building.exists():
        shutil.rmtree(building)
    tree, scratch = building / "tree", building / "scratch"
    tree.mkdir(parents=True)
    scratch.mkdir()
    build_cuda_repo(tree, kernel, scratch)
    build_miniforge(tree)
    build_conda_channel(tree)
    build_indexes(tree)
    shutil.rmtree(scratch)
    (building / "ready").write_text("")
    if done.exists():
        shutil.rmtree(done)
    building.rename(done)
    return done


def vars_for(lock: Path) -> dict[str, object]:
    """The playbook variables that point every role at the stand-ins served in the guest."""
    return {
        "svdops_cuda_repo_base_url": f"{BASE_URL}/cuda/repos",
        "svdops_cuda_keyring_version": KEYRING_VERSION,
        "svdops_miniforge_version": MINIFORGE_VERSION,
        "svdops_miniforge_base_url": f"{BASE_URL}/miniforge",
        "svdops_conda_channel_url": f"{BASE_URL}/conda",
        "svdops_conda_lock_file": str(lock),
        "svdops_pip_index_url": f"{BASE_URL}/pypi/simple",
        "svdops_torch_index_url": f"{BASE_URL}/whl/cpu",
    }


SERVE = textwrap.dedent(f"""\
    set -e; rm -rf {GUEST_ROOT}; mkdir -p {GUEST_ROOT}; tar -xzf - -C {GUEST_ROOT}
    systemctl stop svdops-standin 2>/dev/null || true
    systemd-run --unit svdops-standin --quiet /usr/bin/python3 -m http.server {PORT} --bind 127.0.0.1 \\
        --directory {GUEST_ROOT}
    for i in $(seq 100); do
        python3 -c "import urllib.request as u; u.urlopen('{BASE_URL}/{REPO_PATH}/InRelease')" 2>/dev/null && exit 0
        sleep 0.3
    done
    exit 1""")


def serve_in_guest(ssh_argv: list[str], tree: Path) -> None:
    """Copy the stand-ins into the guest and serve them on its loopback (the guest has no other network)."""
    packed = subprocess.run(["tar", "-czf", "-", "-C", str(tree), "."], check=True, capture_output=True).stdout
    subprocess.run([*ssh_argv, SERVE], input=packed, check=True, capture_output=True, timeout=120)


def _env_sanity() -> None:  # pragma: no cover - manual use: python standins.py CACHE KERNEL
    import sys

    print(ensure_standins(Path(sys.argv[1]), sys.argv[2]))


if __name__ == "__main__":  # pragma: no cover
    os.umask(0o022)
    _env_sanity()
