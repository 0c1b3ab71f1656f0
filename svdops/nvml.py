"""Live GPU values through NVML. The only module (with telemetry.py) that imports pynvml.

pynvml comes from the `nvidia-ml-py` package. It is imported on first use so svdops runs on hosts
without it, and every query is guarded: a GPU that does not support a value gives None for it
and an entry in `errors`, the way nvitop's `nvmlQuery(..., default=NA)` does.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any


def load_pynvml() -> tuple[ModuleType | None, str | None]:
    """(module, None) or (None, why it is not usable)."""
    try:
        return importlib.import_module("pynvml"), None
    except ImportError as exc:
        return None, f"pynvml is not importable ({exc}); install nvidia-ml-py"


def read_devices(
    pynvml: ModuleType | None = None, errors: list[str] | None = None
) -> list[dict[str, Any]] | None:
    """One dict per GPU with live values, or None when NVML cannot be used at all.

    Keys: index, name, uuid, temperature_c, temp_slowdown_c, temp_shutdown_c, power_draw_w,
    power_limit_w, memory_used_mib, memory_total_mib, sm_clock_mhz, sm_clock_max_mhz,
    persistence_mode, compute_capability ("9.0"), and `errors` {key: message} for values NVML
    refused. Reasons NVML could not be used at all are appended to `errors` (the list argument).
    """
    problems = errors if errors is not None else []
    if pynvml is None:
        pynvml, why = load_pynvml()
        if pynvml is None:
            problems.append(why or "pynvml is not importable")
            return None
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError subclasses differ by version; all mean "no NVML here"
        problems.append(f"NVML did not initialise: {_message(exc)}")
        return None
    try:
        count = int(pynvml.nvmlDeviceGetCount())
        return [_read_device(pynvml, index) for index in range(count)]
    except Exception as exc:
        problems.append(f"NVML could not list devices: {_message(exc)}")
        return None
    finally:
        # shutting down a half-broken NVML must not hide what was read
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()


def _read_device(nvml: ModuleType, index: int) -> dict[str, Any]:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    device: dict[str, Any] = {"index": index}
    failures: dict[str, str] = {}

    def query(key: str, call: Callable[[], Any], convert: Callable[[Any], Any] = lambda v: v) -> None:
        try:
            device[key] = convert(call())
        except Exception as exc:
            device[key] = None
            failures[key] = _message(exc)

    query("name", lambda: nvml.nvmlDeviceGetName(handle), _decode)
    query("uuid", lambda: nvml.nvmlDeviceGetUUID(handle), _decode)
    query("temperature_c", lambda: nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU), int)
    query("power_draw_w", lambda: nvml.nvmlDeviceGetPowerUsage(handle), lambda mw: mw / 1000.0)
    query("power_limit_w", lambda: nvml.nvmlDeviceGetEnforcedPowerLimit(handle), lambda mw: mw / 1000.0)
    query("memory_used_mib", lambda: nvml.nvmlDeviceGetMemoryInfo(handle).used, lambda b: int(b) // 2**20)
    query("memory_total_mib", lambda: nvml.nvmlDeviceGetMemoryInfo(handle).total, lambda b: int(b) // 2**20)
    query("temp_slowdown_c", lambda: nvml.nvmlDeviceGetTemperatureThreshold(
        handle, nvml.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN), int)
    query("temp_shutdown_c", lambda: nvml.nvmlDeviceGetTemperatureThreshold(
        handle, nvml.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN), int)
    query("sm_clock_mhz", lambda: nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM), int)
    query("sm_clock_max_mhz", lambda: nvml.nvmlDeviceGetMaxClockInfo(handle, nvml.NVML_CLOCK_SM), int)
    query("persistence_mode", lambda: nvml.nvmlDeviceGetPersistenceMode(handle), lambda v: v == 1)
    query("compute_capability", lambda: nvml.nvmlDeviceGetCudaComputeCapability(handle), lambda cc: f"{cc[0]}.{cc[1]}")
    device["errors"] = failures
    return device


def _decode(value: Any) -> str:
    # nvidia-ml-py < 11.515 returned bytes
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _message(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
