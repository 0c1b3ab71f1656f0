"""The GPUs' own health: ECC, row remapping, retired pages, PCIe link, clocks-event reasons and the NVSwitch
fabric from `nvidia-smi -q -x`; NVLink state and error counters from `nvidia-smi nvlink -s` / `-e`; Xid
events since boot from the kernel log (`journalctl -k -b` or `dmesg`, filtered on the host to NVIDIA lines).

Field spellings follow the driver generations: ECC counters are `single_bit`/`double_bit` before Ampere and
`dram_*`/`sram_*` after; R550 split `sram_uncorrectable` into `_parity` and `_secded`; R535 renamed
`clocks_throttle_reasons` to `clocks_event_reasons`. Everything here is pure and never raises.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from svdops.host.facts import GpuHealth, KernelLogFacts, NvLinkState, XidEvent
from svdops.host.probe._text import first_int, is_not_available

# the driver's counters are 32- or 64-bit; a larger number is garbage, not a GPU
_MAX_COUNT = 2**63 - 1


def _value(element: ET.Element, path: str) -> str | None:
    found = element.find(path)
    if found is None or is_not_available(found.text):
        return None
    return (found.text or "").strip()


def _count(element: ET.Element, *paths: str) -> int | None:
    """The sum of the counters at `paths` that are reported; None when none is."""
    values = [first_int(_value(element, path)) for path in paths]
    known = [v for v in values if v is not None and 0 <= v <= _MAX_COUNT]
    return min(sum(known), _MAX_COUNT) if known else None


def _yes(element: ET.Element, path: str) -> bool | None:
    text = _value(element, path)
    if text is None:
        return None
    lowered = text.lower()
    if lowered in ("yes", "true", "enabled"):
        return True
    if lowered in ("no", "false", "disabled"):
        return False
    return None


_UNCORRECTED = ("dram_uncorrectable", "sram_uncorrectable", "sram_uncorrectable_parity",
                "sram_uncorrectable_secded", "double_bit/total")
_CORRECTED = ("dram_correctable", "sram_correctable", "single_bit/total")


def _ecc(gpu: ET.Element, scope: str, names: tuple[str, ...]) -> int | None:
    return _count(gpu, *(f"ecc_errors/{scope}/{name}" for name in names))


def _reasons(gpu: ET.Element) -> tuple[str, ...] | None:
    """The active clocks-event (throttle) reasons, as short names: gpu_idle, hw_slowdown, sw_thermal_slowdown..."""
    for section, prefix in (("clocks_event_reasons", "clocks_event_reason_"),
                            ("clocks_throttle_reasons", "clocks_throttle_reason_")):
        block = gpu.find(section)
        if block is None:
            continue
        active = []
        known = False
        for child in block:
            text = (child.text or "").strip().lower()
            if text in ("active", "not active"):
                known = True
            if text == "active":
                active.append(child.tag.removeprefix(prefix)[:64])
        return tuple(active) if known else None
    return None


def parse_gpu_health(gpu: ET.Element) -> GpuHealth:
    """The health fields of one `<gpu>` element of `nvidia-smi -q -x`."""
    pending = _yes(gpu, "retired_pages/pending_retirement")
    if pending is None:
        pending = _yes(gpu, "retired_pages/pending_blacklist")  # the R3xx/R4xx spelling
    utilization = first_int(_value(gpu, "utilization/gpu_util"))
    return GpuHealth(
        ecc_volatile_uncorrected=_ecc(gpu, "volatile", _UNCORRECTED),
        ecc_aggregate_uncorrected=_ecc(gpu, "aggregate", _UNCORRECTED),
        ecc_volatile_corrected=_ecc(gpu, "volatile", _CORRECTED),
        ecc_aggregate_corrected=_ecc(gpu, "aggregate", _CORRECTED),
        sram_threshold_exceeded=_yes(gpu, "ecc_errors/aggregate/sram_threshold_exceeded"),
        retired_pages_sbe=_count(gpu, "retired_pages/multiple_single_bit_retirement/retired_count"),
        retired_pages_dbe=_count(gpu, "retired_pages/double_bit_retirement/retired_count"),
        retired_pages_pending=pending,
        remapped_rows_correctable=_count(gpu, "remapped_rows/remapped_row_corr"),
        remapped_rows_uncorrectable=_count(gpu, "remapped_rows/remapped_row_unc"),
        remapped_rows_pending=_yes(gpu, "remapped_rows/remapped_row_pending"),
        remapped_rows_failure=_yes(gpu, "remapped_rows/remapped_row_failure"),
        pcie_gen_device_max=_small(_value(gpu, "pci/pci_gpu_link_info/pcie_gen/max_device_link_gen")),
        pcie_gen_host_max=_small(_value(gpu, "pci/pci_gpu_link_info/pcie_gen/max_host_link_gen")),
        utilization_pct=utilization if utilization is not None and 0 <= utilization <= 100 else None,
        performance_state=_short(_value(gpu, "performance_state"), 8),
        clocks_event_reasons=_reasons(gpu),
        fabric_state=_short(_value(gpu, "fabric/state"), 64),
        fabric_status=_short(_value(gpu, "fabric/status"), 200),
    )


def _small(text: str | None) -> int | None:
    value = first_int(text)
    return value if value is not None and 0 <= value <= 64 else None


def _short(text: str | None, most: int) -> str | None:
    return None if text is None else text[:most]


# --- nvidia-smi nvlink -s / -e -------------------------------------------------------------------

_GPU_LINE = re.compile(r"^GPU (\d{1,4}): .*?(?:\(UUID: (GPU-[0-9A-Za-z-]{1,64})\))?\s*$")
_LINK_LINE = re.compile(r"^\s*Link (\d{1,4}): (.*?)\s*$")
_SPEED = re.compile(r"^(\d+(?:\.\d+)?) GB/s$")
_ERROR_LINE = re.compile(r"^\s*Link (\d{1,4}): (Replay|Recovery|CRC(?: Flit| Data)?) Errors?: (\d{1,20})\s*$", re.I)


@dataclass
class _GpuLinks:
    uuid: str | None
    links: dict[int, NvLinkState] = field(default_factory=dict)


def _by_gpu(text: str) -> dict[int, _GpuLinks]:
    gpus: dict[int, _GpuLinks] = {}
    current: _GpuLinks | None = None
    for line in text.splitlines()[:100_000]:
        head = _GPU_LINE.match(line.strip())
        if head:
            current = gpus.setdefault(int(head.group(1)), _GpuLinks(head.group(2)))
            continue
        if current is None:
            continue
        link = _LINK_LINE.match(line)
        if link and not _ERROR_LINE.match(line) and "," not in link.group(2):
            state = link.group(2)
            speed = _SPEED.match(state)
            number = int(link.group(1))
            current.links[number] = NvLinkState(number, active=speed is not None,
                                                speed_gbps=float(speed.group(1)) if speed else None)
    return gpus


def parse_nvlink_status(text: str) -> dict[int, tuple[str | None, tuple[NvLinkState, ...]]]:
    """`nvidia-smi nvlink -s`: GPU index -> (UUID, links). A link is active when it shows a speed
    ("26.562 GB/s"); `<inactive>`, "Not Supported" or anything else is not. A GPU whose every link is
    inactive may print only NVML's "Unable to retrieve NVLink information as all links are inActive":
    it then has no links listed here."""
    return {index: (gpu.uuid, tuple(gpu.links[n] for n in sorted(gpu.links))) for index, gpu in _by_gpu(text).items()}


def parse_nvlink_errors(text: str) -> dict[int, dict[int, dict[str, int]]]:
    """`nvidia-smi nvlink -e`: GPU index -> link -> {"replay": n, "recovery": n, "crc": n} (CRC flit and data
    errors of NVLink 2 add up into "crc")."""
    out: dict[int, dict[int, dict[str, int]]] = {}
    current: dict[int, dict[str, int]] | None = None
    for line in text.splitlines()[:100_000]:
        head = _GPU_LINE.match(line.strip())
        if head:
            current = out.setdefault(int(head.group(1)), {})
            continue
        match = _ERROR_LINE.match(line)
        if match and current is not None:
            kind = match.group(2).split()[0].lower()
            counters = current.setdefault(int(match.group(1)), {})
            counters[kind] = min(counters.get(kind, 0) + int(match.group(3)), _MAX_COUNT)
    return out


def with_errors(links: tuple[NvLinkState, ...], errors: dict[int, dict[str, int]] | None) -> tuple[NvLinkState, ...]:
    if not errors:
        return links
    merged = []
    for link in links:
        counters = errors.get(link.link)
        if counters is None:
            merged.append(link)
            continue
        merged.append(NvLinkState(link.link, link.active, link.speed_gbps, counters.get("replay"),
                                  counters.get("recovery"), counters.get("crc")))
    return tuple(merged)


# --- the kernel log --------------------------------------------------------------------------------

# what a user who may not read the kernel log is told, by dmesg (kernel.dmesg_restrict=1) and journalctl
_REFUSALS = (
    "operation not permitted", "read kernel buffer failed", "permission denied", "insufficient permissions",
    "not seeing messages from other users and the system", "no journal files were", "not found",
)
_XID = re.compile(
    r"NVRM: Xid \((?:PCI:)?([0-9A-Fa-f]{1,8}(?::[0-9A-Fa-f]{1,4}){1,3}(?:\.[0-7])?)\): (\d{1,6})(?:,\s*(.*))?"
)
_PCI_ADDRESS = re.compile(r"\b(?:PCI:)?([0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}(?:\.[0-7])?)\b")
_BOOT_SECONDS = re.compile(r"^\[\s*(\d{1,10}\.\d{1,9})\]")
_BRACKET_TIME = re.compile(r"^\[([A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4})\]")
_ISO_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?)")
_SYSLOG_TIME = re.compile(r"^([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d)")
_MESSAGE_MOST = 160


@dataclass(frozen=True)
class KernelLogRead:
    """What one kernel-log command gave: the facts, or why this user could not read it."""

    facts: KernelLogFacts | None
    refused: str | None = None


def _time_of(line: str) -> str | None:
    if match := _BOOT_SECONDS.match(line):
        return f"{float(match.group(1)):.0f} s after boot"
    for pattern in (_BRACKET_TIME, _ISO_TIME, _SYSLOG_TIME):
        if match := pattern.match(line):
            return match.group(1)
    return None


def parse_kernel_log(text: str, source: str) -> KernelLogRead:
    """The Xid events in kernel log lines (dmesg `[seconds]`, `dmesg --ctime`, `journalctl -o short-iso`
    or short). Events are grouped by Xid code with a count, the devices and the last time.

    A GPU that has fallen off the bus is logged as Xid 79, but newer drivers may log only the multi-line
    "NVRM: The NVIDIA GPU ... has fallen off the bus" without it: that counts as Xid 79 when no Xid 79
    line is in the log. A log that is only a refusal (no permission) is `refused`, not an empty log."""
    lines = text.splitlines()
    nvidia = [line for line in lines if "NVRM" in line or "nvidia" in line.lower()]
    # a readable log starts with time-stamped lines (the host keeps its first two whatever they say); one
    # without any is a refusal ("Operation not permitted", journalctl's hint) or no log ("No journal files")
    if not nvidia and not any(_time_of(line) for line in lines[:50]):
        said = next((line.strip() for line in lines if any(p in line.lower() for p in _REFUSALS)), None)
        said = said or next((line.strip() for line in lines if line.strip()), "nothing")
        return KernelLogRead(None, refused=f"{source}: {said[:200]}")
    groups: dict[int, dict[str, object]] = {}
    fallen: list[tuple[str, str | None]] = []
    last_address = "unknown device"
    last_time: str | None = None
    for line in nvidia[:200_000]:
        match = _XID.search(line)
        last_time = _time_of(line) or last_time  # a continuation line carries no time of its own
        if match is None:
            # the multi-line form names the GPU a line or two before "fallen off the bus"
            if (address := _PCI_ADDRESS.search(line)) is not None:
                last_address = address.group(1)
            if "fallen off the bus" in line.lower():
                fallen.append((last_address, last_time))
            continue
        code = int(match.group(2))
        group = groups.setdefault(code, {"count": 0, "devices": [], "time": None, "message": ""})
        group["count"] = int(str(group["count"])) + 1
        devices = group["devices"]
        assert isinstance(devices, list)
        if match.group(1) not in devices and len(devices) < 64:
            devices.append(match.group(1))
        group["time"] = _time_of(line) or group["time"]
        group["message"] = (match.group(3) or "").strip()[:_MESSAGE_MOST]
    if fallen and 79 not in groups:
        groups[79] = {"count": len(fallen), "devices": sorted({device for device, _ in fallen})[:64],
                      "time": next((t for _, t in reversed(fallen) if t), None),
                      "message": "GPU has fallen off the bus (logged without an Xid line)"}
    xids = tuple(
        XidEvent(code, int(str(g["count"])), tuple(str(d) for d in g["devices"]),  # type: ignore[attr-defined]
                 None if g["time"] is None else str(g["time"]), str(g["message"]))
        for code, g in sorted(groups.items())
    )
    return KernelLogRead(KernelLogFacts(source=source, lines_read=len(nvidia), xids=xids))
