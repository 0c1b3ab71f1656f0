"""The one test double for the GPU: a pynvml-shaped module that answers what a real host's NVML answered.

It is built from a recorded `nvml.json` (tests/fixtures/hosts/<host>/nvml.json, written on the real
machine with nvidia-ml-py). A recorded value "ERROR NVMLError_NotSupported(3)" is raised as
pynvml raises it: `NVMLError(3)`, which is an `NVMLError_NotSupported` whose str() is
"Not Supported" and whose `.value` is 3. tests/unit/test_fake_nvml.py holds the fake to the real
nvidia-ml-py (error classes and messages, constants, call signatures), which imports without a GPU.

The fake is a `ModuleType`, so it can stand in `sys.modules["pynvml"]` (what `svdops.nvml`
imports) or be handed to `TelemetrySampler(nvml=...)` as the same object.
"""

from __future__ import annotations

import json
import re
import types
from pathlib import Path
from typing import Any, ClassVar

from tests.support.paths import NVML_RECORDINGS, recorded_host

# nvml.h's return codes and the names and messages nvidia-ml-py gives them (pynvml.NVMLError).
_ERRORS: dict[int, tuple[str, str]] = {
    1: ("Uninitialized", "Uninitialized"),
    2: ("InvalidArgument", "Invalid Argument"),
    3: ("NotSupported", "Not Supported"),
    4: ("NoPermission", "Insufficient Permissions"),
    6: ("NotFound", "Not Found"),
    9: ("DriverNotLoaded", "Driver Not Loaded"),
    12: ("LibraryNotFound", "NVML Shared Library Not Found"),
    13: ("FunctionNotFound", "Function Not Found"),
    15: ("GpuIsLost", "GPU is lost"),
    999: ("Unknown", "Unknown Error"),
}
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_GPU_IS_LOST = 15

# Entry points newer than some drivers still in service: nvidia-ml-py has the Python function whatever
# the driver, and its lookup in libnvidia-ml.so raises NVMLError_FunctionNotFound where the driver lacks it.
INTRODUCED_IN_DRIVER: dict[str, int] = {
    "nvmlDeviceGetCurrentClocksEventReasons": 535,  # the renamed nvmlDeviceGetCurrentClocksThrottleReasons
}

_RECORDED_ERROR = re.compile(r"ERROR (NVMLError_\w+)\((\d+)\)")


class NVMLError(Exception):
    """Like pynvml's: `NVMLError(code)` constructs the subclass for that code, e.g. NVMLError_NotSupported."""

    _by_code: ClassVar[dict[int, type[NVMLError]]] = {}  # filled once, below, like pynvml's own
    value: int

    def __new__(cls, value: int) -> NVMLError:
        if cls is NVMLError:
            cls = NVMLError._by_code.get(value, cls)
        error = Exception.__new__(cls)
        error.value = value
        return error

    def __str__(self) -> str:
        known = _ERRORS.get(self.value)
        return known[1] if known else f"NVML Error with code {self.value}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NVMLError) and self.value == other.value

    __hash__ = Exception.__hash__


def _error_class(code: int, name: str) -> type[NVMLError]:
    def new(cls: type[NVMLError], *args: object) -> NVMLError:
        return NVMLError.__new__(cls, code)

    return type(f"NVMLError_{name}", (NVMLError,), {"__new__": new, "__module__": __name__})


ERROR_CLASSES: dict[str, type[NVMLError]] = {}
for _code, (_name, _) in _ERRORS.items():
    ERROR_CLASSES[f"NVMLError_{_name}"] = NVMLError._by_code[_code] = _error_class(_code, _name)


def recorded_error(value: Any) -> NVMLError | None:
    """The error a recorded value stands for ("ERROR NVMLError_NotSupported(3)"), else None."""
    if not isinstance(value, str):
        return None
    match = _RECORDED_ERROR.fullmatch(value)
    if match is None:
        return None
    error = NVMLError(int(match.group(2)))
    # a code the fake does not know would come back as a bare NVMLError: fail here, not in a test's assert
    assert type(error).__name__ == match.group(1), f"recorded {value!r}, the fake knows it as {type(error).__name__}"
    return error


class FakeHandle:
    """Opaque like pynvml's device handle: code that passes an index where a handle belongs fails."""

    def __init__(self, index: int) -> None:
        self.index = index

    def __repr__(self) -> str:
        return f"<fake nvmlDevice_t {self.index}>"


def _recording(host_or_file: str | Path) -> Path:
    path = Path(host_or_file)
    return path if path.suffix == ".json" else recorded_host(str(host_or_file)) / "nvml.json"


class FakeNvml(types.ModuleType):
    """pynvml for the GPUs of one recorded host. Test controls: `gpus` (the recorded answers, one dict
    per GPU, editable), `unsupported` (recorded keys that answer NotSupported), `lacks` (pynvml functions
    whose symbol the driver library does not have), `energy_step_mj`, `apply_row`; and what was asked:
    `calls` (by pynvml function name), `initialised`, `shutdowns`.

    `driver="525.147.05"` answers the recorded values through an older driver's library: every entry
    point newer than that driver (INTRODUCED_IN_DRIVER) is missing, as it is there."""

    NVML_TEMPERATURE_GPU = 0
    NVML_TEMPERATURE_THRESHOLD_SHUTDOWN = 0
    NVML_TEMPERATURE_THRESHOLD_SLOWDOWN = 1
    NVML_CLOCK_SM = 1
    NVML_CLOCK_MEM = 2
    NVML_ERROR_NOT_SUPPORTED = NVML_ERROR_NOT_SUPPORTED
    NVMLError = NVMLError

    def __init__(
        self, recording: str | Path = "h100-sxm-ubuntu2404", *, init_error: int | None = None, driver: str | None = None
    ) -> None:
        super().__init__("pynvml", "fake pynvml answering from " + str(recording))
        for name, cls in ERROR_CLASSES.items():
            setattr(self, name, cls)
        data = json.loads(_recording(recording).read_text())
        self.driver: str = driver or data["driver"]
        major = int(self.driver.split(".")[0])
        self.lacks: set[str] = {name for name, since in INTRODUCED_IN_DRIVER.items() if major < since}
        self.gpus: list[dict[str, Any]] = [dict(gpu) for gpu in data["gpus"]]
        assert data["count"] == len(self.gpus), "the recording lists fewer GPUs than NVML counted"
        self.init_error = init_error  # an NVML_ERROR_* code nvmlInit raises, as on a host without a driver
        self.unsupported: set[str] = set()
        self.energy_step_mj = 0  # added to the energy counter at every read: a GPU drawing power
        self.calls: dict[str, int] = {}
        self.initialised = 0
        self.shutdowns = 0

    # --- test controls ---------------------------------------------------------------------

    def apply_row(self, row: dict[str, Any], index: int = 0) -> None:
        """Make device `index` answer like one row of a recorded telemetry series (tests/fixtures/nvml)."""
        gpu = self.gpus[index]
        gpu["temp_gpu"] = row["temp_c"]
        gpu["power_mw"] = int(row["power_w"] * 1000)
        gpu["clock_sm"] = row["sm_mhz"]
        gpu["clock_mem"] = row["mem_mhz"]
        gpu["util"] = {"gpu": row["util"], "memory": gpu["util"]["memory"]}
        used = int(row["mem_used_mib"] * 2**20)
        gpu["memory"] = {"total": gpu["memory"]["total"], "used": used, "free": gpu["memory"]["total"] - used}
        gpu["energy_mj"] = row["energy_mj"]
        gpu["clocks_event_reasons"] = row["throttle"]

    # --- answering -------------------------------------------------------------------------

    def _count(self, call: str) -> None:
        self.calls[call] = self.calls.get(call, 0) + 1
        if call in self.lacks:  # pynvml looks the symbol up before it calls: this comes first
            raise NVMLError(NVML_ERROR_FUNCTION_NOT_FOUND)
        if self.initialised <= self.shutdowns:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)

    def _answer(self, call: str, handle: FakeHandle, key: str) -> Any:
        self._count(call)
        if not isinstance(handle, FakeHandle):
            raise TypeError(f"{call} wants a device handle, got {handle!r}")
        if key in self.unsupported:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        value = self.gpus[handle.index][key]
        error = recorded_error(value)
        if error is not None:
            raise error
        return value

    # --- the pynvml surface svdops uses (names and parameters as in nvidia-ml-py) ----------

    def nvmlInit(self) -> None:
        self.calls["nvmlInit"] = self.calls.get("nvmlInit", 0) + 1
        if self.init_error is not None:
            raise NVMLError(self.init_error)
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        self._count("nvmlShutdown")
        self.shutdowns += 1

    def nvmlSystemGetDriverVersion(self) -> str:
        self._count("nvmlSystemGetDriverVersion")
        return self.driver

    def nvmlDeviceGetCount(self) -> int:
        self._count("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeHandle:
        self._count("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < len(self.gpus):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return FakeHandle(index)

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> FakeHandle:
        self._count("nvmlDeviceGetHandleByUUID")
        for index, gpu in enumerate(self.gpus):
            if gpu["uuid"] == uuid:
                return FakeHandle(index)
        raise NVMLError(NVML_ERROR_NOT_FOUND)

    def nvmlDeviceGetName(self, handle: FakeHandle) -> str:
        return str(self._answer("nvmlDeviceGetName", handle, "name"))

    def nvmlDeviceGetUUID(self, handle: FakeHandle) -> str:
        return str(self._answer("nvmlDeviceGetUUID", handle, "uuid"))

    def nvmlDeviceGetTemperature(self, handle: FakeHandle, sensor: int) -> int:
        if sensor != self.NVML_TEMPERATURE_GPU:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return int(self._answer("nvmlDeviceGetTemperature", handle, "temp_gpu"))

    def nvmlDeviceGetTemperatureThreshold(self, handle: FakeHandle, threshold: int) -> int:
        keys = {self.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN: "temp_shutdown",
                self.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN: "temp_slowdown"}
        if threshold not in keys:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)  # the recording holds these two thresholds only
        return int(self._answer("nvmlDeviceGetTemperatureThreshold", handle, keys[threshold]))

    def nvmlDeviceGetPowerUsage(self, handle: FakeHandle) -> int:
        return int(self._answer("nvmlDeviceGetPowerUsage", handle, "power_mw"))

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: FakeHandle) -> int:
        return int(self._answer("nvmlDeviceGetEnforcedPowerLimit", handle, "power_limit_mw"))

    def nvmlDeviceGetClockInfo(self, handle: FakeHandle, type: int) -> int:  # `type`: pynvml's parameter name
        keys = {self.NVML_CLOCK_SM: "clock_sm", self.NVML_CLOCK_MEM: "clock_mem"}
        if type not in keys:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)  # graphics and video clocks were not recorded
        return int(self._answer("nvmlDeviceGetClockInfo", handle, keys[type]))

    def nvmlDeviceGetMaxClockInfo(self, handle: FakeHandle, type: int) -> int:  # `type`: pynvml's parameter name
        if type != self.NVML_CLOCK_SM:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return int(self._answer("nvmlDeviceGetMaxClockInfo", handle, "max_clock_sm"))

    def nvmlDeviceGetUtilizationRates(self, handle: FakeHandle) -> types.SimpleNamespace:
        # a c_nvmlUtilization_t in pynvml: fields gpu and memory, in percent
        return types.SimpleNamespace(**self._answer("nvmlDeviceGetUtilizationRates", handle, "util"))

    def nvmlDeviceGetMemoryInfo(self, handle: FakeHandle, version: int | None = None) -> types.SimpleNamespace:
        # a c_nvmlMemory_t in pynvml: fields total, free and used, in bytes
        return types.SimpleNamespace(**self._answer("nvmlDeviceGetMemoryInfo", handle, "memory"))

    def nvmlDeviceGetPersistenceMode(self, handle: FakeHandle) -> int:
        return int(self._answer("nvmlDeviceGetPersistenceMode", handle, "persistence"))

    def nvmlDeviceGetCudaComputeCapability(self, handle: FakeHandle) -> tuple[int, int]:
        major, minor = self._answer("nvmlDeviceGetCudaComputeCapability", handle, "cc")
        return int(major), int(minor)

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: FakeHandle) -> int:
        value = int(self._answer("nvmlDeviceGetTotalEnergyConsumption", handle, "energy_mj"))
        self.gpus[handle.index]["energy_mj"] = value + self.energy_step_mj
        return value

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: FakeHandle) -> int:
        return int(self._answer("nvmlDeviceGetCurrentClocksEventReasons", handle, "clocks_event_reasons"))

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle: FakeHandle) -> int:
        # the same mask under its pre-535 name (nvml.h keeps the old name as an alias)
        return int(self._answer("nvmlDeviceGetCurrentClocksThrottleReasons", handle, "clocks_event_reasons"))


def recorded_series() -> list[dict[str, Any]]:
    """NVML samples at about 10 Hz from the reference SVD runs on the recorded H100 (tests/fixtures/nvml)."""
    rows: list[dict[str, Any]] = json.loads((NVML_RECORDINGS / "telemetry-h100.json").read_text())
    return rows
