"""The system CUDA stack: nvcc, and cuDNN / NCCL as the dynamic linker and dpkg see them.

ldconfig usually only lists sonames (libcudnn.so.9), so the version it gives is often the major
alone; dpkg (and collect_env's file list, where a bundle has it) carries the full one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from svdops.host.probe._text import version_of
from svdops.versions import Version

_NVCC_RELEASE_RE = re.compile(r"release (\d+\.\d+)")
_LDCONFIG_RE = re.compile(r"^\s*(\S+)\s+\(([^)]*)\)\s+=>\s+(\S+)")
_SONAME_RE = re.compile(r"^(lib[\w+-]+)\.so((?:\.\d+)*)$")
# What the CUDA checks care about; `ldconfig -p` on a real host lists hundreds of libraries.
INTERESTING_LIBRARIES = ("libcudnn", "libnccl", "libcudart", "libcublas", "libnvidia-ml", "libcuda")


def parse_nvcc_version(text: str) -> Version | None:
    """The toolkit release from `nvcc --version` ('release 13.0, V13.0.88' -> 13.0)."""
    match = _NVCC_RELEASE_RE.search(text)
    return version_of(match.group(1)) if match else None


@dataclass(frozen=True)
class LinkerLibraries:
    sonames: tuple[str, ...] = ()  # as ldconfig lists them, first seen first
    paths: tuple[str, ...] = ()
    cudnn: Version | None = None
    nccl: Version | None = None


def parse_ldconfig(text: str) -> LinkerLibraries:
    """CUDA-related entries of `ldconfig -p`; the most precise cuDNN/NCCL version among them."""
    sonames: dict[str, None] = {}
    paths: dict[str, None] = {}
    for line in text.splitlines():
        match = _LDCONFIG_RE.match(line)
        if not match or not match.group(1).startswith(INTERESTING_LIBRARIES):
            continue
        sonames[match.group(1)] = None
        paths[match.group(3)] = None
    names = [*sonames, *(path.rsplit("/", 1)[-1] for path in paths)]
    return LinkerLibraries(
        tuple(sonames), tuple(paths), _best_library_version(names, "libcudnn"), _best_library_version(names, "libnccl")
    )


def library_version_from_paths(paths: list[str], library: str) -> Version | None:
    """The most precise version in file names like /usr/lib/x86_64-linux-gnu/libcudnn.so.9.14.0."""
    return _best_library_version([path.rsplit("/", 1)[-1] for path in paths], library)


def _best_library_version(names: list[str], library: str) -> Version | None:
    best: Version | None = None
    for name in names:
        match = _SONAME_RE.match(name.strip())
        # libcudnn_ops.so.9 belongs to cuDNN too; libcudnn_frontend does not ship sonames like this
        if not match or not (match.group(1) == library or match.group(1).startswith(library + "_")):
            continue
        version = version_of(match.group(2).lstrip("."))
        if version and (best is None or len(version.parts) > len(best.parts)):
            best = version
    return best


@dataclass(frozen=True)
class DpkgPackage:
    name: str
    version: str
    installed: bool


def parse_dpkg_query(text: str) -> dict[str, DpkgPackage]:
    """`dpkg-query -W -f '${Package}\\t${Version}\\t${db:Status-Abbrev}\\n'` lines by package name.

    dpkg-query exits 1 when one pattern matched nothing but still prints the others, so callers
    pass stdout whatever the exit status.
    """
    packages = {}
    for line in text.splitlines():
        cells = line.split("\t")
        if len(cells) < 2 or not cells[0].strip():
            continue
        status = cells[2].strip() if len(cells) > 2 else "ii"
        # Status-Abbrev: desired + current state; 'ii' and 'hi' (held) are installed
        installed = len(status) >= 2 and status[1] == "i"
        packages[cells[0].strip()] = DpkgPackage(cells[0].strip(), cells[1].strip(), installed)
    return packages


def dpkg_version(packages: dict[str, DpkgPackage], pattern: str, parts: int = 3) -> Version | None:
    """The highest installed version among packages whose name matches `pattern` (a regex).

    '9.14.0.64-1' -> 9.14.0 for parts=3; the Debian revision and build number are dropped.
    """
    regex = re.compile(pattern)
    found = [
        version if len(version.parts) <= parts else version.truncate(parts)
        for package in packages.values()
        if package.installed and regex.fullmatch(package.name)
        if (version := version_of(package.version.split(":", 1)[-1])) is not None
    ]
    return max(found) if found else None


def cudnn_from_dpkg(packages: dict[str, DpkgPackage]) -> Version | None:
    return dpkg_version(packages, r"(lib)?cudnn\d*(-cuda-\d+)?")


def nccl_from_dpkg(packages: dict[str, DpkgPackage]) -> Version | None:
    return dpkg_version(packages, r"libnccl\d*")


def toolkit_from_dpkg(packages: dict[str, DpkgPackage]) -> Version | None:
    return dpkg_version(packages, r"cuda-toolkit-\d+-\d+", parts=2)


def driver_from_dpkg(packages: dict[str, DpkgPackage]) -> Version | None:
    """The installed userspace driver (nvidia-driver-580-open 580.95.05-0ubuntu1 -> 580.95.05)."""
    return dpkg_version(packages, r"nvidia-driver-\d+(-open|-server|-server-open)?")
