"""A pynvml-shaped fake built from a real NVML recording (a recorded host's `nvml.json`).

The one test double for the GPU: it answers what the real H100 answered, and a test can replay a
recorded telemetry series row by row (`apply_row`) or make a query fail the way NVML does.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
H100 = FIXTURES / "hosts" / "h100-sxm-ubuntu2404" / "nvml.json"


class NVMLError(Exception):
    pass


class NVMLError_NotSupported(NVMLError):
    def __str__(self) -> str:
        return "Not Supported"


class NVMLError_LibraryNotFound(NVMLError):
    def __str__(self) -> str:
        return "NVML Shared Library Not Found"


class FakeNvml:
    NVML_TEMPERATURE_GPU = 0
    NVML_CLOCK_SM = 1
    NVML_CLOCK_MEM = 2
    NVMLError = NVMLError
    NVMLError_NotSupported = NVMLError_NotSupported

    def __init__(self, recording: str | Path = H100, *, library_missing: bool = False) -> None:
        data = json.loads(Path(recording).read_text())
        self.driver = data["driver"]
        self.gpus: list[dict[str, Any]] = [dict(g) for g in data["gpus"]]
        self.library_missing = library_missing
        self.unsupported: set[str] = set()  # query names that answer NotSupported
        self.energy_step_mj = 0  # added to the energy counter at every read: a GPU drawing power
        self.calls: dict[str, int] = {}
        self.initialised = 0
        self.shutdowns = 0

    # --- test controls ---------------------------------------------------------------------

    def apply_row(self, row: dict[str, Any], index: int = 0) -> None:
        """Make device `index` answer like one row of a recorded telemetry series."""
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

    # --- the pynvml surface the sampler uses --------------------------------------------------

    def _answer(self, name: str, handle: int, key: str) -> Any:
        self.calls[name] = self.calls.get(name, 0) + 1
        if self.initialised <= self.shutdowns:
            raise NVMLError("Uninitialized")
        if name in self.unsupported:
            raise NVMLError_NotSupported()
        return self.gpus[handle][key]

    def nvmlInit(self) -> None:
        if self.library_missing:
            raise NVMLError_LibraryNotFound()
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlSystemGetDriverVersion(self) -> str:
        return self.driver

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        if not 0 <= index < len(self.gpus):
            raise NVMLError("Invalid Argument")
        return index

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> int:
        for i, gpu in enumerate(self.gpus):
            if gpu["uuid"] == uuid:
                return i
        raise NVMLError("Not Found")

    def nvmlDeviceGetName(self, handle: int) -> str:
        return self._answer("name", handle, "name")

    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> int:
        assert sensor == self.NVML_TEMPERATURE_GPU
        return self._answer("temperature", handle, "temp_gpu")

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        return self._answer("power", handle, "power_mw")

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: int) -> int:
        return self._answer("power_limit", handle, "power_limit_mw")

    def nvmlDeviceGetClockInfo(self, handle: int, clock: int) -> int:
        return self._answer("clock", handle, "clock_sm" if clock == self.NVML_CLOCK_SM else "clock_mem")

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(**self._answer("utilization", handle, "util"))

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(**self._answer("memory", handle, "memory"))

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: int) -> int:
        value = self._answer("energy", handle, "energy_mj")
        self.gpus[handle]["energy_mj"] = value + self.energy_step_mj
        return value

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: int) -> int:
        return self._answer("clocks_event", handle, "clocks_event_reasons")


def recorded_series() -> list[dict[str, Any]]:
    return json.loads((FIXTURES / "nvml" / "telemetry-h100.json").read_text())
