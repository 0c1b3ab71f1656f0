"""The NVML fake against the real nvidia-ml-py: a double that drifts from pynvml would test nothing.

pynvml imports and builds its error objects without a GPU or libnvidia-ml, so these checks run
everywhere the package is installed (it is a core dependency of svdops).
"""

from __future__ import annotations

import inspect
import json

import pynvml
import pytest

from tests.support.fake_nvml import ERROR_CLASSES, FakeHandle, FakeNvml, NVMLError, recorded_error
from tests.support.paths import recorded_hosts


def test_error_classes_names_and_messages_are_pynvmls():
    assert ERROR_CLASSES
    for name, cls in ERROR_CLASSES.items():
        code = cls(0).value  # pynvml's subclasses ignore the argument and carry their own code
        real = pynvml.NVMLError(code)
        mine = NVMLError(code)
        assert type(mine) is cls and type(real).__name__ == name == type(mine).__name__
        assert (str(mine), mine.value) == (str(real), real.value)
        assert isinstance(mine, NVMLError) and mine == NVMLError(code)
        assert getattr(pynvml, name).__mro__[1] is pynvml.NVMLError  # a direct subclass, as here


def test_every_recorded_error_is_raised_as_pynvml_would():
    seen = []
    for host in recorded_hosts(having="nvml.json"):
        data = json.loads((host / "nvml.json").read_text())
        for gpu in data["gpus"]:
            for value in [*gpu.values(), *(f"ERROR {link['error']}" for link in gpu.get("nvlink", []))]:
                if isinstance(value, str) and value.startswith("ERROR "):
                    error = recorded_error(value)
                    real = pynvml.NVMLError(error.value)
                    assert (type(error).__name__, str(error)) == (type(real).__name__, str(real)), value
                    seen.append(value)
    assert "ERROR NVMLError_NotSupported(3)" in seen
    assert recorded_error("NVIDIA H100 80GB HBM3") is None


def test_constants_are_pynvmls():
    # dir() of a module instance lists only its __dict__; the constants live on the class
    constants = [name for name in dir(FakeNvml) if name.startswith("NVML_")]
    assert "NVML_CLOCK_SM" in constants
    for name in constants:
        assert getattr(FakeNvml, name) == getattr(pynvml, name), name


def test_calls_have_pynvmls_names_and_parameters():
    fake = FakeNvml()
    calls = [name for name in dir(FakeNvml) if name.startswith("nvml")]
    assert "nvmlDeviceGetMemoryInfo" in calls and len(calls) >= 15
    for name in calls:
        real = list(inspect.signature(getattr(pynvml, name)).parameters)
        assert list(inspect.signature(getattr(fake, name)).parameters) == real, name


def test_it_stands_in_for_the_module_and_behaves_like_nvml():
    fake = FakeNvml()
    with pytest.raises(NVMLError) as info:
        fake.nvmlDeviceGetName(FakeHandle(0))
    assert type(info.value).__name__ == "NVMLError_Uninitialized"  # before nvmlInit, as NVML says
    fake.nvmlInit()
    with pytest.raises(TypeError):
        fake.nvmlDeviceGetName(0)  # an index is not a handle
    handle = fake.nvmlDeviceGetHandleByIndex(0)
    assert fake.nvmlDeviceGetName(handle) == "NVIDIA H100 80GB HBM3"
    with pytest.raises(fake.NVMLError_InvalidArgument):
        fake.nvmlDeviceGetHandleByIndex(1)
    with pytest.raises(fake.NVMLError_NotFound):
        fake.nvmlDeviceGetHandleByUUID("GPU-not-there")
    fake.gpus[0]["max_clock_sm"] = "ERROR NVMLError_GpuIsLost(15)"
    with pytest.raises(fake.NVMLError_GpuIsLost, match="GPU is lost"):
        fake.nvmlDeviceGetMaxClockInfo(handle, fake.NVML_CLOCK_SM)
    with pytest.raises(fake.NVMLError_DriverNotLoaded, match="Driver Not Loaded"):
        FakeNvml(init_error=9).nvmlInit()


def test_an_older_driver_lacks_the_renamed_call_as_pynvml_reports_it(monkeypatch):
    """pynvml has the Python function whatever the driver; a libnvidia-ml.so older than 535 lacks the
    symbol and pynvml's lookup raises FunctionNotFound. The real lookup, against a library without it:"""

    class DriverLibrary525:  # a loaded CDLL answers getattr with the symbol or AttributeError
        nvmlDeviceGetCurrentClocksThrottleReasons = staticmethod(lambda handle, reasons: 0)

    monkeypatch.setattr(pynvml, "nvmlLib", DriverLibrary525())
    monkeypatch.setattr(pynvml, "_nvmlGetFunctionPointer_cache", {})
    with pytest.raises(pynvml.NVMLError) as real:
        pynvml.nvmlDeviceGetCurrentClocksEventReasons(None)
    assert pynvml.nvmlDeviceGetCurrentClocksThrottleReasons(None) == 0  # the old name is still there

    fake = FakeNvml(driver="525.147.05")
    fake.nvmlInit()
    handle = fake.nvmlDeviceGetHandleByIndex(0)
    with pytest.raises(NVMLError) as mine:
        fake.nvmlDeviceGetCurrentClocksEventReasons(handle)
    assert (type(mine.value).__name__, str(mine.value), mine.value.value) == (
        type(real.value).__name__, str(real.value), real.value.value)  # fmt: skip
    assert type(real.value).__name__ == "NVMLError_FunctionNotFound"
    assert fake.nvmlDeviceGetCurrentClocksThrottleReasons(handle) == fake.gpus[0]["clocks_event_reasons"]
    assert fake.nvmlSystemGetDriverVersion() == "525.147.05"
    assert "nvmlDeviceGetCurrentClocksEventReasons" not in FakeNvml().lacks  # the recorded 580 driver has it
