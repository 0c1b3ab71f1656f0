"""svdops.nvml against a pynvml-shaped module that answers what NVML answered on the real hosts.

The fake (tests/support/fake_nvml.py) is built from the hosts' nvml.json recordings: a recorded
"ERROR NVMLError_X(n)" string is raised as the real library raises error n.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from svdops import nvml
from svdops.host.probe.gather import gather_facts
from svdops.host.shell import RecordedShell
from tests.support.fake_nvml import NVML_ERROR_DRIVER_NOT_LOADED, FakeNvml
from tests.support.paths import recorded_host


def test_reads_the_recorded_h100():
    (device,) = nvml.read_devices(FakeNvml())
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
    fake = FakeNvml()
    fake.gpus[0]["max_clock_sm"] = "ERROR NVMLError_NotSupported(3)"
    (device,) = nvml.read_devices(fake)
    assert device["sm_clock_max_mhz"] is None
    assert device["errors"] == {"sm_clock_max_mhz": "Not Supported"}  # str() of pynvml's NVMLError_NotSupported
    assert device["temperature_c"] == 40


def test_nvml_that_does_not_initialise_gives_none_and_a_reason():
    problems: list[str] = []
    assert nvml.read_devices(FakeNvml(init_error=NVML_ERROR_DRIVER_NOT_LOADED), problems) is None
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
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml("h200-ubuntu2404"))
    facts = gather_facts(RecordedShell(recorded_host("h200-ubuntu2404")), use_nvml=True)
    (gpu,) = facts.gpus
    # the R580 XML alone gives 90/96 (see test_probe_gpu); NVML knows the thresholds exactly
    assert (gpu.temp_slowdown_c, gpu.temp_shutdown_c) == (89, 95)
    assert gpu.temperature_c == 38
    assert gpu.power_draw_w == 84.161
    assert gpu.memory_used_mib == 615
    assert gpu.memory_total_mib == 143771  # nvidia-smi's figure is kept
    assert facts.note_for("gpus.nvml") is None


def test_gather_without_nvml_notes_why(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml(init_error=NVML_ERROR_DRIVER_NOT_LOADED))
    facts = gather_facts(RecordedShell(recorded_host("h100-sxm-ubuntu2404")), use_nvml=True)
    assert len(facts.gpus) == 1
    assert facts.note_for("gpus.nvml") == "NVML did not initialise: Driver Not Loaded"


def test_a_gpu_only_nvml_sees_is_added(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml())
    facts = gather_facts(RecordedShell(tmp_path, name="bare"), use_nvml=True)
    (gpu,) = facts.gpus
    assert gpu.name == "NVIDIA H100 80GB HBM3"
    assert gpu.compute_capability is not None and str(gpu.compute_capability) == "9.0"
    assert facts.topology.gpu_count == 1
