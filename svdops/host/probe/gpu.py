"""GPUs from `nvidia-smi -q -x` and `--query-gpu` CSV; compute capability when the driver does not say.

The XML layout changed over driver generations (R470 `power_readings/power_limit`, R535
`gpu_power_readings/current_power_limit`, R580 temperature thresholds relative to T.Limit);
every lookup below tries the known spellings in turn.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import cast

from svdops.host.facts import GpuFacts, MigDevice
from svdops.host.probe._text import enabled, first_float, first_int, is_not_available, small_int, version_of
from svdops.host.probe.commands import QUERY_GPU_FIELDS
from svdops.host.probe.health import parse_gpu_health
from svdops.versions import Version


@dataclass(frozen=True)
class SmiReport:
    """What `nvidia-smi -q -x` says: the GPUs and the driver's own versions."""

    gpus: tuple[GpuFacts, ...] = ()
    driver_version: Version | None = None
    cuda_version: Version | None = None
    problems: tuple[str, ...] = ()


def parse_nvidia_smi_xml(text: str) -> SmiReport:
    """GPUs from `nvidia-smi -q -x`. A truncated document still yields the GPUs that were complete."""
    problems: list[str] = []
    try:
        # the whole document at once, walked in C; only a broken one goes event by event (below). The same
        # expat parser either way: it fetches no external entity, and refuses an entity-expansion bomb
        # (expat >= 2.4; tests/unit/test_probe_gpu.py)
        root = ET.fromstring(text)  # noqa: S314
    except ET.ParseError:
        gpu_elements, driver_text, cuda_text, attached_text, problems = _parse_in_pieces(text)
    else:
        gpu_elements = list(root.iter("gpu"))
        driver_text, cuda_text, attached_text = (_last_text(root, tag)
                                                 for tag in ("driver_version", "cuda_version", "attached_gpus"))
    gpus = tuple(_gpu_from_xml(index, element) for index, element in enumerate(gpu_elements))
    if not gpus and not problems:
        problems.append("no <gpu> entries in nvidia-smi XML")
    attached = first_int(attached_text)
    if attached is not None and attached != len(gpus):
        # a GPU that fell off the bus is still counted by the driver but gets no <gpu> entry
        # (or the document was cut short): the facts would silently hold fewer GPUs
        problems.append(f"nvidia-smi says {attached} attached GPU(s) but describes {len(gpus)}")
    return SmiReport(gpus, version_of(driver_text), version_of(cuda_text), tuple(dict.fromkeys(problems)))


def _last_text(root: ET.Element, tag: str) -> str | None:
    """The text of the last `tag` element, as the event walk keeps it (nvidia-smi writes each once)."""
    text = None
    for element in root.iter(tag):
        text = element.text
    return text


def _parse_in_pieces(text: str) -> tuple[list[ET.Element], str | None, str | None, str | None, list[str]]:
    """A document that is not well-formed (cut short, a stray byte): every element that ended before the
    error, in the order they ended, so the GPUs that were complete still count."""
    parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("end",))
    gpu_elements: list[ET.Element] = []
    driver_text = cuda_text = attached_text = None
    problems: list[str] = []
    try:
        parser.feed(text)
        parser.close()
    except ET.ParseError as exc:
        problems.append(f"nvidia-smi XML is not well-formed ({exc})")
    try:
        for _event, element in cast("Iterator[tuple[str, object]]", parser.read_events()):
            if not isinstance(element, ET.Element):
                continue
            if element.tag == "gpu":
                gpu_elements.append(element)
            elif element.tag == "driver_version":
                driver_text = element.text
            elif element.tag == "cuda_version":
                cuda_text = element.text
            elif element.tag == "attached_gpus":
                attached_text = element.text
    except ET.ParseError as exc:  # events after the first error surface here
        if not problems:
            problems.append(f"nvidia-smi XML is not well-formed ({exc})")
    return gpu_elements, driver_text, cuda_text, attached_text, problems


def _text(element: ET.Element, *paths: str) -> str | None:
    """The first of `paths` that exists and holds a value (not N/A)."""
    for path in paths:
        found = element.find(path)
        if found is not None and not is_not_available(found.text):
            return (found.text or "").strip()
    return None


def _gpu_from_xml(index: int, gpu: ET.Element) -> GpuFacts:
    slowdown, shutdown = _temperature_thresholds(gpu)
    name = _text(gpu, "product_name") or "unknown GPU"
    architecture = _text(gpu, "product_architecture")
    return GpuFacts(
        index=index,
        name=name,
        uuid=_text(gpu, "uuid"),
        pci_bus_id=gpu.get("id") or _text(gpu, "pci/pci_bus_id"),
        architecture=architecture,
        compute_capability=compute_capability_from_name(name, architecture),
        memory_total_mib=first_int(_text(gpu, "fb_memory_usage/total")),
        memory_used_mib=first_int(_text(gpu, "fb_memory_usage/used")),
        pcie_gen_current=first_int(_text(gpu, "pci/pci_gpu_link_info/pcie_gen/current_link_gen")),
        pcie_gen_max=first_int(_text(gpu, "pci/pci_gpu_link_info/pcie_gen/max_link_gen")),
        pcie_width_current=first_int(_text(gpu, "pci/pci_gpu_link_info/link_widths/current_link_width")),
        pcie_width_max=first_int(_text(gpu, "pci/pci_gpu_link_info/link_widths/max_link_width")),
        power_limit_w=first_float(_text(
            gpu, "gpu_power_readings/current_power_limit", "gpu_power_readings/enforced_power_limit",
            "power_readings/enforced_power_limit", "power_readings/power_limit",
        )),
        power_max_limit_w=first_float(
            _text(gpu, "gpu_power_readings/max_power_limit", "power_readings/max_power_limit")
        ),
        power_draw_w=first_float(_text(
            gpu, "gpu_power_readings/average_power_draw", "gpu_power_readings/power_draw",
            "gpu_power_readings/instant_power_draw", "power_readings/power_draw",
        )),
        temperature_c=first_int(_text(gpu, "temperature/gpu_temp")),
        temp_slowdown_c=slowdown,
        temp_shutdown_c=shutdown,
        persistence_mode=enabled(_text(gpu, "persistence_mode")),
        ecc_enabled=enabled(_text(gpu, "ecc_mode/current_ecc")),
        mig_enabled=enabled(_text(gpu, "mig_mode/current_mig")),
        mig_devices=_mig_devices(gpu),
        vbios_version=_text(gpu, "vbios_version"),
        sm_clock_max_mhz=first_int(_text(gpu, "max_clocks/sm_clock")),
        health=parse_gpu_health(gpu),
    )


def _mig_devices(gpu: ET.Element) -> tuple[MigDevice, ...]:
    """The MIG devices of a GPU in MIG mode (`<mig_devices>` holds the text "None" otherwise)."""
    if enabled(_text(gpu, "mig_mode/current_mig")) is not True:
        return ()
    devices = []
    for position, mig in enumerate(gpu.findall("mig_devices/mig_device")):
        devices.append(MigDevice(
            index=_or(first_int(_text(mig, "index")), position),
            gpu_instance_id=first_int(_text(mig, "gpu_instance_id")),
            compute_instance_id=first_int(_text(mig, "compute_instance_id")),
            memory_total_mib=first_int(_text(mig, "fb_memory_usage/total")),
            multiprocessor_count=first_int(_text(mig, "device_attributes/shared/multiprocessor_count")),
        ))
    return tuple(devices)


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def _temperature_thresholds(gpu: ET.Element) -> tuple[int | None, int | None]:
    """(slowdown, shutdown) in °C.

    Up to R570 the XML gives them directly. From R575 it gives margins to T.Limit instead:
    `gpu_temp_tlimit` is how far the GPU is below its max operating temperature and the
    thresholds are offsets from that limit (negative = above it), so absolute = temp + margin - offset.
    The two readings are sampled apart, so this can be 1 °C off (the recorded H200 gives 90/96
    where NVML says 89/95); NVML's exact thresholds replace these when gather uses NVML.
    """
    slowdown = first_int(_text(gpu, "temperature/gpu_temp_slow_threshold"))
    shutdown = first_int(_text(gpu, "temperature/gpu_temp_max_threshold"))
    if slowdown is not None or shutdown is not None:
        return slowdown, shutdown
    current = first_int(_text(gpu, "temperature/gpu_temp"))
    margin = first_int(_text(gpu, "temperature/gpu_temp_tlimit"))
    if current is None or margin is None:
        return None, None
    limit = current + margin
    slow_offset = first_int(_text(gpu, "temperature/gpu_temp_slow_tlimit_threshold"))
    shut_offset = first_int(_text(gpu, "temperature/gpu_temp_max_tlimit_threshold"))
    return (
        None if slow_offset is None else limit - slow_offset,
        None if shut_offset is None else limit - shut_offset,
    )


@dataclass(frozen=True)
class QueryGpuRow:
    index: int
    uuid: str | None
    compute_capability: Version | None
    fields: dict[str, str]


def parse_query_gpu_csv(text: str) -> tuple[QueryGpuRow, ...]:
    """Rows of `nvidia-smi --query-gpu=<QUERY_GPU_FIELDS> --format=csv,noheader,nounits`.

    Drivers before R510 reject `compute_cap` and print an error instead of rows: that yields ().
    """
    rows: list[QueryGpuRow] = []
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.split(",")]
        index = small_int(cells[0], 6)
        if len(cells) != len(QUERY_GPU_FIELDS) or index is None:
            continue
        fields = dict(zip(QUERY_GPU_FIELDS, cells, strict=True))
        cc = None if is_not_available(fields["compute_cap"]) else version_of(fields["compute_cap"])
        uuid = None if is_not_available(fields["uuid"]) else fields["uuid"]
        rows.append(QueryGpuRow(index, uuid, cc, fields))
    return tuple(rows)


def merge_query_gpu(gpus: tuple[GpuFacts, ...], rows: tuple[QueryGpuRow, ...]) -> tuple[GpuFacts, ...]:
    """Take the driver's compute capability over the name table; match rows by UUID, else index."""
    by_uuid = {row.uuid: row for row in rows if row.uuid}
    by_index = {row.index: row for row in rows}
    merged = []
    for gpu in gpus:
        row = by_uuid.get(gpu.uuid or "") or by_index.get(gpu.index)
        if row and row.compute_capability:
            gpu = replace(gpu, compute_capability=row.compute_capability)
        merged.append(gpu)
    return tuple(merged)


# The XML has no compute capability and R470 cannot be asked for it; product names pin it down.
# Order matters: "A100" must be tried before "A10".
_CC_BY_NAME: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), cc)
    for pattern, cc in (
        (r"\bGB300\b|\bB300\b", "10.3"),
        (r"\bGB200\b|\bB200\b|\bB100\b", "10.0"),
        (r"\bRTX 50\d0\b|\bRTX PRO \d000 Blackwell\b", "12.0"),
        (r"\bGH200\b|\bH100\b|\bH200\b|\bH800\b|\bH20\b", "9.0"),
        (r"\bL40S?\b|\bL4\b|\bL20\b|\bRTX 40\d0\b|\bRTX \d000 Ada\b", "8.9"),
        (r"\bA100\b|\bA800\b|\bA30\b", "8.0"),
        (r"\bA10G?\b|\bA40\b|\bA16\b|\bA2\b|\bRTX A\d000\b|\bRTX 30\d0\b", "8.6"),
        (r"\bT4\b|\bRTX 20\d0\b|\bQuadro RTX\b|\bTITAN RTX\b", "7.5"),
        (r"\bV100\b|\bTITAN V\b", "7.0"),
        (r"\bP100\b", "6.0"),
    )
)
_CC_BY_ARCH = {"hopper": "9.0", "ada lovelace": "8.9", "turing": "7.5", "volta": "7.0"}


def compute_capability_from_name(name: str | None, architecture: str | None = None) -> Version | None:
    """Compute capability from the product name (or an architecture with only one), else None."""
    for pattern, cc in _CC_BY_NAME:
        if name and pattern.search(name):
            return Version.parse(cc)
    arch_cc = _CC_BY_ARCH.get((architecture or "").strip().lower())
    return Version.parse(arch_cc) if arch_cc else None
