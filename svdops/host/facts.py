"""HostFacts: one snapshot of what a host has. Frozen dataclasses; units live in the names.

A value that could not be gathered is None, and `HostFacts.notes` says why (subject, reason).
Versions are `Version` objects (comparable); in JSON they are strings.

The JSON form is versioned (`SCHEMA`); see docs/facts-schema.md. Readers must accept unknown keys.
A snapshot is read as hostile input: it must carry its `schema`, nest no deeper than MAX_DEPTH, and every
number must be finite and within what a real host can have (FIELD_LIMITS); anything else is a FactsError
naming the field.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from svdops.errors import FactsError
from svdops.versions import Version

SCHEMA = "svdops.facts/1"


@dataclass(frozen=True)
class Note:
    """Why a value is not available (or a caveat about it). `subject` is a dotted facts path."""

    subject: str
    reason: str


@dataclass(frozen=True)
class OsFacts:
    id: str | None = None  # "ubuntu"
    version_id: str | None = None  # "24.04"
    pretty_name: str | None = None
    codename: str | None = None
    kernel_release: str | None = None  # from uname -r / uname -a
    arch: str | None = None
    hostname: str | None = None


@dataclass(frozen=True)
class CpuFacts:
    model_name: str | None = None
    vendor: str | None = None
    arch: str | None = None
    logical_cpus: int | None = None
    sockets: int | None = None
    cores_per_socket: int | None = None
    threads_per_core: int | None = None
    numa_nodes: int | None = None


@dataclass(frozen=True)
class MemoryFacts:
    total_mib: int | None = None
    available_mib: int | None = None
    swap_total_mib: int | None = None
    hugepages_total: int | None = None


@dataclass(frozen=True)
class DriverFacts:
    userspace_version: Version | None = None  # nvidia-smi "Driver Version" (libnvidia-ml)
    kernel_module_version: Version | None = None  # /proc/driver/nvidia/version (loaded module)
    kernel_module_flavor: str | None = None  # "open" | "proprietary"
    cuda_driver_api: Version | None = None  # highest CUDA the driver supports ("CUDA Version: 13.0")
    nvml_version: str | None = None
    library_mismatch: bool = False  # nvidia-smi said "Driver/library version mismatch"
    nouveau_loaded: bool | None = None
    secure_boot_enabled: bool | None = None
    dkms_modules_signed: bool | None = None
    persistenced_running: bool | None = None

    @property
    def needs_reboot(self) -> bool:
        """The loaded kernel module is not the installed userspace driver: only a reboot fixes it."""
        if self.library_mismatch:
            return True
        if self.userspace_version and self.kernel_module_version:
            return self.userspace_version != self.kernel_module_version
        return False


@dataclass(frozen=True)
class MigDevice:
    """One MIG device (a GPU instance + compute instance) of a GPU in MIG mode: what CUDA sees."""

    index: int
    gpu_instance_id: int | None = None
    compute_instance_id: int | None = None
    memory_total_mib: int | None = None
    multiprocessor_count: int | None = None


@dataclass(frozen=True)
class NvLinkState:
    """One NVLink of a GPU: `nvidia-smi nvlink -s` (state, speed) and `-e` (error counters, None when not read)."""

    link: int
    active: bool
    speed_gbps: float | None = None
    replay_errors: int | None = None
    recovery_errors: int | None = None
    crc_errors: int | None = None


@dataclass(frozen=True)
class GpuHealth:
    """What the GPU says about its own health (`nvidia-smi -q -x`, `nvidia-smi nvlink -s/-e`). None: not reported
    (a consumer GPU has no ECC counters; an old driver no row remapper) or not read (see the notes)."""

    ecc_volatile_uncorrected: int | None = None  # DRAM + SRAM uncorrectable since the last driver load/reset
    ecc_aggregate_uncorrected: int | None = None  # over the GPU's lifetime (InfoROM)
    ecc_volatile_corrected: int | None = None
    ecc_aggregate_corrected: int | None = None
    sram_threshold_exceeded: bool | None = None  # NVIDIA's SRAM RMA flag (R550+)
    retired_pages_sbe: int | None = None  # page retirement (before Ampere): multiple single-bit errors
    retired_pages_dbe: int | None = None  # double-bit errors
    retired_pages_pending: bool | None = None  # retired at the next driver reload/reset
    remapped_rows_correctable: int | None = None  # row remapping (Ampere and later)
    remapped_rows_uncorrectable: int | None = None
    remapped_rows_pending: bool | None = None  # a remap waits for a GPU reset
    remapped_rows_failure: bool | None = None  # NVIDIA's RMA criterion
    pcie_gen_device_max: int | None = None  # what the GPU can do
    pcie_gen_host_max: int | None = None  # what the slot/root port can do
    utilization_pct: int | None = None  # GPU utilisation when read: 0 at idle
    performance_state: str | None = None  # P0 .. P12
    # the active clocks-event reasons: gpu_idle, hw_slowdown, sw_thermal_slowdown, ...
    clocks_event_reasons: tuple[str, ...] | None = None
    fabric_state: str | None = None  # NVSwitch fabric (Hopper+): Completed / In Progress / Not Started
    fabric_status: str | None = None  # Success, or why the fabric manager failed the GPU
    nvlinks: tuple[NvLinkState, ...] | None = None  # None: `nvidia-smi nvlink -s` not read; (): no NVLink


@dataclass(frozen=True)
class XidEvent:
    """All the kernel log's events of one Xid code since boot."""

    code: int
    count: int
    devices: tuple[str, ...] = ()  # PCI addresses as the driver prints them (0000:01:00)
    last_time: str | None = None  # as the log prints it: ISO time, ctime, or "12345.6 s after boot"
    last_message: str = ""  # the text after the code, shortened


@dataclass(frozen=True)
class KernelLogFacts:
    """NVIDIA's Xid events since boot, from `journalctl -k -b` or `dmesg`, whichever this user may read."""

    source: str | None = None  # "journalctl" | "dmesg"; None when neither could be read
    lines_read: int = 0  # NVIDIA lines seen
    xids: tuple[XidEvent, ...] = ()


@dataclass(frozen=True)
class GpuFacts:
    index: int
    name: str
    uuid: str | None = None
    pci_bus_id: str | None = None
    architecture: str | None = None  # "Hopper"
    compute_capability: Version | None = None  # 9.0
    memory_total_mib: int | None = None
    memory_used_mib: int | None = None
    pcie_gen_current: int | None = None
    pcie_gen_max: int | None = None  # of the GPU and host together
    pcie_width_current: int | None = None
    pcie_width_max: int | None = None
    power_limit_w: float | None = None
    power_max_limit_w: float | None = None
    power_draw_w: float | None = None
    temperature_c: int | None = None
    temp_slowdown_c: int | None = None
    temp_shutdown_c: int | None = None
    persistence_mode: bool | None = None
    ecc_enabled: bool | None = None
    mig_enabled: bool | None = None
    # with MIG on, processes get these slices, not the whole GPU: count and memory come from them
    mig_devices: tuple[MigDevice, ...] = ()
    vbios_version: str | None = None
    sm_clock_max_mhz: int | None = None
    numa_node: int | None = None
    health: GpuHealth = field(default_factory=GpuHealth)


@dataclass(frozen=True)
class GpuLink:
    """How two GPUs reach each other, as `nvidia-smi topo -m` prints it."""

    gpu_a: int
    gpu_b: int
    kind: str  # "NV#" (e.g. "NV18"), "PIX", "PXB", "PHB", "NODE", "SYS"
    nvlinks: int = 0  # the # in NV#

    @property
    def is_nvlink(self) -> bool:
        return self.kind.startswith("NV")


@dataclass(frozen=True)
class GpuAffinity:
    gpu: int
    cpu_affinity: str | None = None  # "0-15" as printed
    numa_affinity: str | None = None


@dataclass(frozen=True)
class TopologyFacts:
    gpu_count: int = 0
    links: tuple[GpuLink, ...] = ()
    affinity: tuple[GpuAffinity, ...] = ()

    def link(self, a: int, b: int) -> GpuLink | None:
        for item in self.links:
            if {item.gpu_a, item.gpu_b} == {a, b}:
                return item
        return None

    @property
    def all_pairs_nvlink(self) -> bool:
        """True when every GPU pair is joined by NVLink (vacuously true for 0 or 1 GPU)."""
        pairs = [(a, b) for a in range(self.gpu_count) for b in range(a + 1, self.gpu_count)]
        return all((link := self.link(a, b)) is not None and link.is_nvlink for a, b in pairs)


@dataclass(frozen=True)
class CudaFacts:
    toolkit_version: Version | None = None  # nvcc --version
    toolkit_path: str | None = None
    cudnn_version: Version | None = None  # system libcudnn (ldconfig / dpkg)
    nccl_version: Version | None = None  # system libnccl
    libraries: tuple[str, ...] = ()  # sonames seen in ldconfig -p (libcudnn.so.9, ...)


@dataclass(frozen=True)
class CondaFacts:
    executable: str | None = None  # conda / mamba / micromamba found
    version: Version | None = None
    envs: tuple[str, ...] = ()  # env prefixes


@dataclass(frozen=True)
class PythonEnvFacts:
    executable: str | None = None
    python_version: Version | None = None
    packages: dict[str, str] = field(default_factory=dict)  # normalised name -> version text
    torch_version: Version | None = None  # without the local label: 2.11.0
    torch_cuda: Version | None = None  # CUDA the wheel was built for, None for a CPU wheel
    torch_cudnn: Version | None = None  # bundled in the wheel
    torch_nccl: Version | None = None
    torch_arch_list: tuple[str, ...] = ()  # sm_80, sm_90, ...
    diffusers_version: Version | None = None
    transformers_version: Version | None = None
    conda: CondaFacts = field(default_factory=CondaFacts)


@dataclass(frozen=True)
class BlockDevice:
    name: str
    type: str  # disk, part, raid0, lvm, loop, rom, ...
    size_bytes: int = 0
    rotational: bool | None = None
    transport: str | None = None  # nvme, sata, virtio, usb
    model: str | None = None
    mountpoint: str | None = None
    fstype: str | None = None
    children: tuple[BlockDevice, ...] = ()

    @property
    def is_nvme(self) -> bool:
        return self.transport == "nvme" or self.name.startswith("nvme")


@dataclass(frozen=True)
class MdArray:
    name: str  # md0
    level: str | None  # raid0, raid5, raid6, raid1, raid10
    state: str  # active, inactive
    members: tuple[str, ...] = ()  # the working set: nvme0n1, sdb1 (without [n]; spares and failed disks left out)
    failed_members: tuple[str, ...] = ()  # marked (F)
    size_bytes: int | None = None
    devices_total: int | None = None  # [n/m]: n, the devices the array is made of
    devices_up: int | None = None  # [n/m]: m, those in sync
    recovering: bool = False  # a resync/recovery/reshape is running now (not DELAYED/PENDING)
    spare_members: tuple[str, ...] = ()  # marked (S)
    sync_waiting: str | None = None  # "DELAYED" / "PENDING": a resync is queued, not running
    container: str | None = None  # "/md127/0" for a volume inside an external (IMSM/DDF) container

    @property
    def all_members(self) -> tuple[str, ...]:
        """Every disk mdstat lists for the array: working set, failed and spares."""
        return self.members + self.failed_members + self.spare_members

    @property
    def degraded(self) -> bool:
        if self.devices_total is not None and self.devices_up is not None:
            return self.devices_up < self.devices_total
        return bool(self.failed_members)


@dataclass(frozen=True)
class Mount:
    device: str
    mountpoint: str
    fstype: str | None = None
    size_bytes: int | None = None
    available_bytes: int | None = None
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class StorageFacts:
    block_devices: tuple[BlockDevice, ...] = ()
    md_arrays: tuple[MdArray, ...] = ()
    mounts: tuple[Mount, ...] = ()


@dataclass(frozen=True)
class HostFacts:
    hostname: str  # as the host names itself (uname -n), else the label it was reached by
    collected_at: str  # ISO 8601 UTC
    source: str  # "local", "ssh://user@host:port", "recorded:/path"
    os: OsFacts = field(default_factory=OsFacts)
    cpu: CpuFacts = field(default_factory=CpuFacts)
    memory: MemoryFacts = field(default_factory=MemoryFacts)
    driver: DriverFacts = field(default_factory=DriverFacts)
    gpus: tuple[GpuFacts, ...] = ()  # in nvidia-smi order; empty on a host without NVIDIA GPUs
    topology: TopologyFacts = field(default_factory=TopologyFacts)
    cuda: CudaFacts = field(default_factory=CudaFacts)
    python: PythonEnvFacts = field(default_factory=PythonEnvFacts)
    storage: StorageFacts = field(default_factory=StorageFacts)
    kernel_log: KernelLogFacts = field(default_factory=KernelLogFacts)
    notes: tuple[Note, ...] = ()  # why each null value is null
    schema: str = SCHEMA  # "svdops.facts/1"

    def note_for(self, subject: str) -> str | None:
        """The recorded reason a subject (or anything under it) is not available."""
        for note in self.notes:
            if note.subject == subject or note.subject.startswith(subject + "."):
                return note.reason
        return None

    def to_dict(self) -> dict[str, Any]:
        return _to_jsonable(self)  # type: ignore[no-any-return]

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)

    @classmethod
    def from_dict(cls, data: Any, where: str = "facts") -> HostFacts:
        if not isinstance(data, dict):
            raise FactsError("facts must be a JSON object", where=where)
        _refuse_deep(data, where)
        if "schema" not in data:
            raise FactsError("no `schema` key: not an svdops facts snapshot", where=where,
                             hint="write one with `svdops facts --json -o FILE`")
        schema = data["schema"]
        if not isinstance(schema, str) or not schema.startswith("svdops.facts/"):
            raise FactsError(f"not an svdops facts snapshot (schema {schema!r})", where=where)
        if schema.split("/")[-1] != SCHEMA.split("/")[-1]:
            raise FactsError(
                f"facts schema {schema} is not supported by this svdops (reads {SCHEMA})",
                where=where,
                hint="gather the facts again with this version: `svdops facts --json`",
            )
        return _from_jsonable(cls, data, where)  # type: ignore[no-any-return]

    @classmethod
    def from_json(cls, text: str, where: str = "facts") -> HostFacts:
        try:
            data = json.loads(text, parse_constant=_refuse_constant, parse_int=_int_or_huge)
        except json.JSONDecodeError as exc:
            raise FactsError(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", where=where) from exc
        except _NotANumber as exc:
            raise FactsError(f"not valid facts: {exc.args[0]} is not a number JSON allows (nor a real host has)",
                             where=where) from None
        except ValueError as exc:  # e.g. an integer of more digits than Python converts
            raise FactsError(f"not valid facts: {exc}", where=where) from None
        except RecursionError:
            raise FactsError(f"nested too deeply (a snapshot nests at most {MAX_DEPTH} levels)", where=where) from None
        return cls.from_dict(data, where)


# --- what a snapshot may hold -----------------------------------------------------------------

# a real snapshot nests about 8 levels (block devices in block devices); anything far deeper is hostile
MAX_DEPTH = 64
MAX_GPUS = 1024
_BYTES = (0, 2**60)  # 1 EiB: no disk, array or mount is larger
_MIB = (0, 2**40)  # 1 EiB in MiB: no memory is larger
_GPU_INDEX = (0, MAX_GPUS - 1)
_TEMPERATURE_C = (-60, 250)  # a sensor outside this range is broken or lying
_SMALL_COUNT = (0, 2**20)
# field name -> (lowest, highest) allowed; any other number must be finite and between 0 and 2**63 - 1
FIELD_LIMITS: dict[str, tuple[float, float]] = {
    "total_mib": _MIB, "available_mib": _MIB, "swap_total_mib": _MIB, "memory_total_mib": _MIB,
    "memory_used_mib": _MIB, "hugepages_total": _MIB,
    "size_bytes": _BYTES, "available_bytes": _BYTES,
    "index": _GPU_INDEX, "gpu_a": _GPU_INDEX, "gpu_b": _GPU_INDEX, "gpu": _GPU_INDEX, "gpu_count": (0, MAX_GPUS),
    "nvlinks": (0, 1024), "numa_node": (-1, 4096),  # sysfs says -1 for "no NUMA node"
    "temperature_c": _TEMPERATURE_C, "temp_slowdown_c": _TEMPERATURE_C, "temp_shutdown_c": _TEMPERATURE_C,
    "power_limit_w": (0, 100_000), "power_max_limit_w": (0, 100_000), "power_draw_w": (0, 100_000),
    "sm_clock_max_mhz": (0, 100_000), "pcie_gen_current": (0, 64), "pcie_gen_max": (0, 64),
    "pcie_width_current": (0, 64), "pcie_width_max": (0, 64),
    "logical_cpus": _SMALL_COUNT, "sockets": _SMALL_COUNT, "cores_per_socket": _SMALL_COUNT,
    "threads_per_core": _SMALL_COUNT, "numa_nodes": _SMALL_COUNT,
    "devices_total": _SMALL_COUNT, "devices_up": _SMALL_COUNT,
    "utilization_pct": (0, 100), "pcie_gen_device_max": (0, 64), "pcie_gen_host_max": (0, 64),
    "link": (0, 1024), "speed_gbps": (0, 100_000), "code": (0, 1_000_000), "lines_read": (0, 2**40),
}
_DEFAULT_LIMITS: tuple[float, float] = (0, 2**63 - 1)
# list field name -> most items a real host has
LIST_LIMITS: dict[str, int] = {"gpus": MAX_GPUS, "nvlinks": 1024, "xids": 4096, "devices": MAX_GPUS}


class _NotANumber(ValueError):
    """NaN or Infinity in the JSON text (Python's json accepts them; JSON does not)."""


def _refuse_constant(name: str) -> Any:
    raise _NotANumber(name)


def _int_or_huge(text: str) -> int | float:
    """An integer of absurdly many digits becomes infinity, which the field's limit check then refuses by
    name (Python would refuse to convert it without saying which field it was)."""
    return int(text) if len(text) <= 40 else math.inf


def _refuse_deep(data: Any, where: str) -> None:
    """Walks the document without recursion: a hostile one nested a million deep is refused, not a crash."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise FactsError(f"nested too deeply (a snapshot nests at most {MAX_DEPTH} levels)", where=where)
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list | tuple):
            stack.extend((v, depth + 1) for v in value)


def _within_limits(value: float, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise FactsError("impossible value: not a finite number (or more digits than any real value has)",
                         where=where)
    name = where.rsplit(".", 1)[-1]
    low, high = FIELD_LIMITS.get(name, _DEFAULT_LIMITS)
    if not low <= value <= high:
        raise FactsError(f"impossible value {value!r}: expected {low:g} to {high:g}", where=where)


# --- JSON conversion -------------------------------------------------------------------------

def _to_jsonable(value: Any) -> Any:
    if isinstance(value, Version):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _to_jsonable(v) for k, v in value.items()}
    return value


T = TypeVar("T")
_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = get_type_hints(cls)
    return _HINTS[cls]


def _from_jsonable(tp: Any, value: Any, where: str) -> Any:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _from_jsonable(args[0], value, where)
    if tp is Version:
        if not isinstance(value, str | int | float):
            raise FactsError(f"expected a version string, got {type(value).__name__}", where=where)
        try:
            return Version.parse(str(value))
        except ValueError as exc:
            raise FactsError(str(exc), where=where) from exc
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise FactsError(f"expected an object, got {type(value).__name__}", where=where)
        hints = _hints(tp)
        kwargs = {}
        for f in dataclasses.fields(tp):
            if f.name in value:
                kwargs[f.name] = _from_jsonable(hints[f.name], value[f.name], f"{where}.{f.name}")
        try:
            return tp(**kwargs)
        except TypeError as exc:
            raise FactsError(f"missing or wrong fields: {exc}", where=where) from exc
    if origin is tuple:
        if not isinstance(value, list):
            raise FactsError(f"expected a list, got {type(value).__name__}", where=where)
        (item_tp, *_rest) = get_args(tp)
        most = LIST_LIMITS.get(where.rsplit(".", 1)[-1])
        if most is not None and len(value) > most:
            raise FactsError(f"impossible count: {len(value)} items, a host has at most {most}", where=where)
        return tuple(_from_jsonable(item_tp, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise FactsError(f"expected an object, got {type(value).__name__}", where=where)
        return {str(k): str(v) for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise FactsError(f"expected true/false, got {value!r}", where=where)
        return value
    if tp is int:
        if isinstance(value, float) and not math.isfinite(value):
            _within_limits(value, where)
        if isinstance(value, bool) or not isinstance(value, int):
            raise FactsError(f"expected an integer, got {value!r}", where=where)
        _within_limits(value, where)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise FactsError(f"expected a number, got {value!r}", where=where)
        _within_limits(value, where)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise FactsError(f"expected a string, got {value!r}", where=where)
        return value
    if tp is typing.Any:
        return value
    raise FactsError(f"cannot read a value of type {tp}", where=where)
