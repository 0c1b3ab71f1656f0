"""svdops.nvml against a pynvml-shaped module that answers what NVML answered on the real hosts.

The fake is built from the hosts' nvml.json recordings: a recorded "ERROR NVMLError_X(n)" string
becomes a raised NVMLError, as the real library would raise it.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from svdops import nvml
from svdops.host.probe.gather import gather_facts
from svdops.host.shell import RecordedShell

HOSTS = Path(__file__).resolve().parent.parent / "fixtures" / "hosts"


class NVMLError(Exception):
    pass


def fake_pynvml(
    host: str = "h100-sxm-ubuntu2404", *, init_error: str | None = None, **overrides: Any
) -> types.ModuleType:
    """A module with pynvml's names, answering from HOSTS/host/nvml.json (`overrides` patch GPU 0)."""
    data = json.loads((HOSTS / host / "nvml.json").read_text())
    gpus = [dict(gpu) for gpu in data["gpus"]]
    gpus[0].update(overrides)
    module = types.ModuleType("pynvml")

    def answer(handle: int, key: str, pick: Any = lambda v: v) -> Any:
        value = gpus[handle][key]
        if isinstance(value, str) and value.startswith("ERROR "):
            raise NVMLError(value.removeprefix("ERROR "))
        return pick(value)

    def init() -> None:
        if init_error:
            raise NVMLError(init_error)

    names: dict[str, Any] = {
        "NVMLError": NVMLError,
        "NVML_TEMPERATURE_GPU": 0,
        "NVML_TEMPERATURE_THRESHOLD_SHUTDOWN": 0,
        "NVML_TEMPERATURE_THRESHOLD_SLOWDOWN": 1,
        "NVML_CLOCK_SM": 1,
        "nvmlInit": init,
        "nvmlShutdown": lambda: None,
        "nvmlDeviceGetCount": lambda: data["count"],
        "nvmlDeviceGetHandleByIndex": lambda index: index,
        "nvmlDeviceGetName": lambda h: answer(h, "name"),
        "nvmlDeviceGetUUID": lambda h: answer(h, "uuid"),
        "nvmlDeviceGetTemperature": lambda h, sensor: answer(h, "temp_gpu"),
        "nvmlDeviceGetTemperatureThreshold": lambda h, kind: answer(
            h, "temp_shutdown" if kind == 0 else "temp_slowdown"
        ),
        "nvmlDeviceGetPowerUsage": lambda h: answer(h, "power_mw"),
        "nvmlDeviceGetEnforcedPowerLimit": lambda h: answer(h, "power_limit_mw"),
        "nvmlDeviceGetMemoryInfo": lambda h: answer(h, "memory", lambda m: types.SimpleNamespace(**m)),
        "nvmlDeviceGetClockInfo": lambda h, clock: answer(h, "clock_sm"),
        "nvmlDeviceGetMaxClockInfo": lambda h, clock: answer(h, "max_clock_sm"),
        "nvmlDeviceGetPersistenceMode": lambda h: answer(h, "persistence"),
        "nvmlDeviceGetCudaComputeCapability": lambda h: answer(h, "cc", tuple),
    }
    for name, value in names.items():
        setattr(module, name, value)
    return module


def test_reads_the_recorded_h100():
    (device,) = nvml.read_devices(fake_pynvml())
    assert device["name"] == "NVIDIA H100 80GB HBM3"
    assert device["uuid"] == "GPU-dbf187b6-39ec-d5dd-7320-ed7f451e1b44"
    assert (device["temperature_c"], device["temp_slowdown_c"], device["temp_shutdown_c"]) == (40, 89, 95)
    assert device["power_draw_w"] == 76.75
    assert device["power_limit_w"] == 700.0
    assert (device["memory_used_mib"], device["memory_total_mib"]) == (480, 81559)
    assert (device["sm_clock_mhz"], device["sm_clock_max_mhz"]) == (345, 1980)
    assert device["persistence_mode"] is True
    assert device["compute_capability"] == "9.0"
    assert device["errors"] == {}


def test_an_unsupported_query_is_none_with_its_error():
    (device,) = nvml.read_devices(fake_pynvml(max_clock_sm="ERROR NVMLError_NotSupported(3)"))
    assert device["sm_clock_max_mhz"] is None
    assert device["errors"] == {"sm_clock_max_mhz": "NVMLError_NotSupported(3)"}
    assert device["temperature_c"] == 40


def test_nvml_that_does_not_initialise_gives_none_and_a_reason():
    problems: list[str] = []
    assert nvml.read_devices(fake_pynvml(init_error="Driver Not Loaded"), problems) is None
    assert problems == ["NVML did not initialise: Driver Not Loaded"]


def test_missing_pynvml_gives_none_and_a_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    problems: list[str] = []
    assert nvml.read_devices(errors=problems) is None
    assert "nvidia-ml-py" in problems[0]


def test_real_pynvml_on_a_machine_without_a_gpu():
    if Path("/proc/driver/nvidia/version").exists():
        pytest.skip("this machine has an NVIDIA driver")
    problems: list[str] = []
    assert nvml.read_devices(errors=problems) is None
    assert problems


def test_gather_overlays_live_values_and_exact_thresholds(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml("h200-ubuntu2404"))
    facts = gather_facts(RecordedShell(HOSTS / "h200-ubuntu2404"), use_nvml=True)
    (gpu,) = facts.gpus
    # the R580 XML alone gives 90/96 (see test_probe_gpu); NVML knows the thresholds exactly
    assert (gpu.temp_slowdown_c, gpu.temp_shutdown_c) == (89, 95)
    assert gpu.temperature_c == 38
    assert gpu.power_draw_w == 84.161
    assert gpu.memory_used_mib == 615
    assert gpu.memory_total_mib == 143771  # nvidia-smi's figure is kept
    assert facts.note_for("gpus.nvml") is None


def test_gather_without_nvml_notes_why(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(init_error="Driver Not Loaded"))
    facts = gather_facts(RecordedShell(HOSTS / "h100-sxm-ubuntu2404"), use_nvml=True)
    assert len(facts.gpus) == 1
    assert facts.note_for("gpus.nvml") == "NVML did not initialise: Driver Not Loaded"


def test_a_gpu_only_nvml_sees_is_added(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml())
    facts = gather_facts(RecordedShell(tmp_path, name="bare"), use_nvml=True)
    (gpu,) = facts.gpus
    assert gpu.name == "NVIDIA H100 80GB HBM3"
    assert gpu.compute_capability is not None and str(gpu.compute_capability) == "9.0"
    assert facts.topology.gpu_count == 1
