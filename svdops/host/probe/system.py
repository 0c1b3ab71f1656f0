"""OS release, kernel, CPU and memory: /etc/os-release, `uname -a`, `lscpu -J`, /proc/meminfo."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from svdops.host.facts import CpuFacts, MemoryFacts, OsFacts
from svdops.host.probe._text import first_int, key_values, load_json

_KNOWN_ARCHES = ("x86_64", "aarch64", "arm64", "ppc64le", "s390x", "riscv64", "i686")


def parse_os_release(text: str) -> OsFacts:
    values = key_values(text)
    return OsFacts(
        id=values.get("ID") or None,
        version_id=values.get("VERSION_ID") or None,
        pretty_name=values.get("PRETTY_NAME") or None,
        codename=values.get("VERSION_CODENAME") or values.get("UBUNTU_CODENAME") or None,
    )


@dataclass(frozen=True)
class Uname:
    hostname: str | None = None
    kernel_release: str | None = None
    arch: str | None = None


def parse_uname(text: str) -> Uname:
    """`uname -a`: 'Linux vm 6.18.44-fc-v657-gpu #1 SMP PREEMPT_DYNAMIC @0 x86_64 x86_64 x86_64 GNU/Linux'.

    The kernel version in the middle has a varying number of words, so the machine is found by name.
    """
    words = text.split()
    if len(words) < 3 or words[0] != "Linux":
        return Uname()
    arch = next((word for word in reversed(words[3:]) if word in _KNOWN_ARCHES), None)
    return Uname(words[1], words[2], arch)


def parse_hostname(text: str) -> str | None:
    name = text.strip().splitlines()[0].strip() if text.strip() else ""
    return name[:253] if name and " " not in name else None


def parse_lscpu_json(text: str) -> CpuFacts | None:
    """`lscpu -J`. util-linux 2.38+ nests fields under "children"; older versions list them flat."""
    data = load_json(text)
    if not isinstance(data, dict) or not isinstance(data.get("lscpu"), list):
        return None
    fields: dict[str, str] = {}
    _flatten(data["lscpu"], fields)
    if not fields:
        return None
    return CpuFacts(
        model_name=fields.get("Model name"),
        vendor=fields.get("Vendor ID"),
        arch=fields.get("Architecture"),
        logical_cpus=first_int(fields.get("CPU(s)")),
        sockets=first_int(fields.get("Socket(s)")),
        cores_per_socket=first_int(fields.get("Core(s) per socket") or fields.get("Core(s) per cluster")),
        threads_per_core=first_int(fields.get("Thread(s) per core")),
        numa_nodes=first_int(fields.get("NUMA node(s)")),
    )


def _flatten(items: list[Any], out: dict[str, str]) -> None:
    for item in items:
        if not isinstance(item, dict):
            continue
        field, data = item.get("field"), item.get("data")
        if isinstance(field, str) and isinstance(data, str | int):
            out.setdefault(field.strip().rstrip(":"), str(data))
        if isinstance(item.get("children"), list):
            _flatten(item["children"], out)


def parse_meminfo(text: str) -> MemoryFacts | None:
    values = {key: first_int(value) for key, value in key_values(text, sep=":").items()}
    if values.get("MemTotal") is None:
        return None

    def mib(key: str) -> int | None:
        kib = values.get(key)
        return None if kib is None else kib // 1024

    return MemoryFacts(
        total_mib=mib("MemTotal"),
        available_mib=mib("MemAvailable"),
        swap_total_mib=mib("SwapTotal"),
        hugepages_total=values.get("HugePages_Total"),
    )
