"""The NVIDIA driver: userspace (nvidia-smi, NVML) vs the loaded kernel module, and what blocks it.

A userspace driver newer than the loaded module is the classic "upgraded, not rebooted" state:
nvidia-smi then prints "Failed to initialize NVML: Driver/library version mismatch".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from svdops.host.probe._text import version_of
from svdops.versions import Version

_MISMATCH_RE = re.compile(r"Driver/library version mismatch", re.IGNORECASE)
_NVML_LIB_RE = re.compile(r"NVML library version:\s*([\d.]+)")
_PROC_VERSION_RE = re.compile(r"NVRM version:.*?Kernel Module(?: for \S+)?\s+(\d+(?:\.\d+)+)")
_SMI_HEADER_RE = re.compile(r"Driver Version:\s*([\d.]+)(?:\s+CUDA Version:\s*([\d.]+))?")
_NO_DRIVER_RE = re.compile(r"couldn't communicate with the NVIDIA driver|No devices were found", re.IGNORECASE)
# nvidia-smi says these in its first line, in place of a report: searching past that only costs time
# (a case-blind search through a 64 MiB recording took 1.8 s)
_MESSAGE_SPAN = 65536


@dataclass(frozen=True)
class KernelModule:
    version: Version | None
    flavor: str | None  # "open" | "proprietary"


def parse_proc_driver_version(text: str) -> KernelModule | None:
    """The loaded module from /proc/driver/nvidia/version; None when it is not an NVRM banner.

    Open modules say "NVIDIA UNIX Open Kernel Module for x86_64  580.159.04";
    proprietary ones "NVIDIA UNIX x86_64 Kernel Module  535.183.01".
    """
    for line in text.splitlines():
        match = _PROC_VERSION_RE.search(line)
        if match:
            flavor = "open" if "Open Kernel Module" in line else "proprietary"
            return KernelModule(version_of(match.group(1)), flavor)
    return None


@dataclass(frozen=True)
class SmiVersions:
    driver: Version | None = None
    nvml: str | None = None
    cuda_driver_api: Version | None = None


def parse_smi_version(text: str) -> SmiVersions:
    """`nvidia-smi --version` (R525+): 'DRIVER version : 580.159.04', 'CUDA Version : 13.0'."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, found, value = line.partition(":")
        if found:
            values[key.strip().lower()] = value.strip()
    nvml = values.get("nvml version") or None
    return SmiVersions(
        version_of(values.get("driver version")),
        nvml if nvml and version_of(nvml) else None,
        version_of(values.get("cuda version")),
    )


def parse_smi_header(text: str) -> SmiVersions:
    """The banner of plain `nvidia-smi`: '| NVIDIA-SMI 580.159.04  Driver Version: 580.159.04  CUDA Version: 13.0 |'."""
    match = _SMI_HEADER_RE.search(text)
    if not match:
        return SmiVersions()
    return SmiVersions(version_of(match.group(1)), None, version_of(match.group(2)))


def loaded_driver_version(userspace: Version | None, module: Version | None) -> Version | None:
    """The driver version that compatibility questions (CUDA, open modules, GPU support) must use.

    CUDA and the GPU talk to the loaded kernel module; the userspace version (nvidia-smi, the
    package) only says what will load after a reboot. When both are known and differ, the
    module is what runs; without a module reading, the userspace version is the best guess.
    """
    return module if module is not None else userspace


def module_behind_userspace(userspace: Version | None, module: Version | None) -> bool:
    """The loaded module is older than the installed userspace driver (upgraded, not rebooted)."""
    return userspace is not None and module is not None and module < userspace


def has_library_mismatch(*outputs: str) -> bool:
    return any(_MISMATCH_RE.search(text, 0, _MESSAGE_SPAN) for text in outputs if text)


def nvml_library_version(*outputs: str) -> str | None:
    """The userspace NVML version nvidia-smi names when it cannot talk to the module."""
    for text in outputs:
        match = _NVML_LIB_RE.search(text or "", 0, _MESSAGE_SPAN)
        if match:
            return match.group(1)
    return None


def driver_unreachable(*outputs: str) -> bool:
    """nvidia-smi runs but no driver answers (module not loaded, nouveau holds the GPU)."""
    return any(_NO_DRIVER_RE.search(text, 0, _MESSAGE_SPAN) for text in outputs if text)


def parse_proc_modules(text: str) -> frozenset[str]:
    """Names of loaded kernel modules from /proc/modules (first column)."""
    names = set()
    for line in text.splitlines():
        name = line.split(" ", 1)[0].strip()
        if name and re.fullmatch(r"[\w-]+", name):
            names.add(name)
    return frozenset(names)


def parse_mokutil_sb_state(text: str) -> bool | None:
    """`mokutil --sb-state`: 'SecureBoot enabled' / 'SecureBoot disabled'.

    Legacy-BIOS machines say "doesn't support Secure Boot" or "EFI variables are not supported":
    Secure Boot is then not enforcing, which is what a driver install cares about.
    """
    lowered = text.lower()
    if "secureboot enabled" in lowered:
        return True
    if "secureboot disabled" in lowered:
        return False
    if "doesn't support secure boot" in lowered or "efi variables are not supported" in lowered:
        return False
    return None


def parse_systemctl_is_active(text: str) -> bool | None:
    """`systemctl is-active UNIT` prints one state word (and exits 3 when not active)."""
    word = text.strip().splitlines()[0].strip() if text.strip() else ""
    if word in {"active", "reloading", "activating"}:
        return True
    if word in {"inactive", "failed", "deactivating", "unknown"}:
        return False
    return None
