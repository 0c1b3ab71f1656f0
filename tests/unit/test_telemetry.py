"""The NVML sampler against a fake built from a real H100 recording (the only double)."""

from __future__ import annotations

import itertools
import statistics
import threading
import time

import pytest

from svdops.telemetry import (
    TELEMETRY_COLUMNS,
    TelemetrySample,
    TelemetrySampler,
    decode_clocks_event_reasons,
    energy_joules,
    samples_between,
    summarize,
)
from tests.support.fake_nvml import NVML_ERROR_LIBRARY_NOT_FOUND, FakeNvml, recorded_series


def test_clocks_event_reasons_decode_to_names():
    assert decode_clocks_event_reasons(0) == ()
    assert decode_clocks_event_reasons(None) == ()
    assert decode_clocks_event_reasons(0x4) == ("sw_power_cap",)
    assert decode_clocks_event_reasons(0x1 | 0x40 | 0x80) == (
        "gpu_idle",
        "hw_thermal_slowdown",
        "hw_power_brake_slowdown",
    )
    assert decode_clocks_event_reasons(0x100 | 0x400) == ("display_clock_setting", "0x400")


def test_one_sample_reads_what_the_h100_answered():
    nvml = FakeNvml()
    sampler = TelemetrySampler(0, nvml=nvml)
    assert sampler.open()
    sample = sampler.sample_once()
    sampler.stop()
    assert sampler.gpu_name == "NVIDIA H100 80GB HBM3"
    assert sampler.driver_version == "580.159.04"
    assert sample.temp_c == 40
    assert sample.power_w == pytest.approx(76.75)
    assert sample.power_limit_w == pytest.approx(700.0)
    assert (sample.sm_mhz, sample.mem_mhz) == (345, 2619)
    assert sample.util_gpu_pct == 0
    assert sample.mem_used_mib == pytest.approx(480.0)
    assert sample.energy_mj == 34934621
    assert sample.clocks_event_reasons == ("gpu_idle",)
    assert len(sample.as_row()) == len(TELEMETRY_COLUMNS)
    assert nvml.shutdowns == 1


def test_device_chosen_by_uuid_and_unknown_device_is_a_note():
    nvml = FakeNvml()
    by_uuid = TelemetrySampler("GPU-dbf187b6-39ec-d5dd-7320-ed7f451e1b44", nvml=nvml)
    assert by_uuid.open()
    by_uuid.stop()
    missing = TelemetrySampler(3, nvml=nvml)
    assert not missing.open()
    assert "no GPU 3" in (missing.note or "")
    assert nvml.initialised == nvml.shutdowns  # every init was paired with a shutdown


def test_missing_nvml_library_is_a_note_not_an_error():
    sampler = TelemetrySampler(0, nvml=FakeNvml(init_error=NVML_ERROR_LIBRARY_NOT_FOUND))
    sampler.start()
    assert not sampler.available
    assert "NVML could not start" in (sampler.note or "")
    sampler.mark("still recorded")
    sampler.stop()
    assert sampler.samples == []
    assert [m.label for m in sampler.marks] == ["still recorded"]


def test_unsupported_query_is_none_and_not_asked_again():
    nvml = FakeNvml()
    nvml.unsupported.add("energy_mj")
    sampler = TelemetrySampler(0, nvml=nvml)
    sampler.open()
    first, second = sampler.sample_once(), sampler.sample_once()
    sampler.stop()
    assert first.energy_mj is None and second.energy_mj is None
    assert first.power_w is not None
    assert nvml.calls["nvmlDeviceGetTotalEnergyConsumption"] == 1
    assert sampler.errors == 0


def test_thread_samples_at_its_rate_and_stops_cleanly():
    nvml = FakeNvml()
    sampler = TelemetrySampler(0, hz=50, nvml=nvml)
    with sampler:
        time.sleep(0.4)
        before = sampler.mark("stage start")
        time.sleep(0.1)
    stopped_at = time.monotonic()
    samples = sampler.samples
    assert 12 <= len(samples) <= 30, len(samples)
    monos = [s.t_mono for s in samples]
    assert monos == sorted(monos)
    assert statistics.median(b - a for a, b in itertools.pairwise(monos)) == pytest.approx(0.02, abs=0.01)
    assert all(s.t_mono <= stopped_at for s in samples)
    assert samples_between(samples, before.t_mono, stopped_at)  # marks line up with samples
    assert not any(t.name == "svdops-telemetry" for t in threading.enumerate())
    assert nvml.shutdowns == 1
    assert 0 < sampler.thread_cpu_s < 0.5  # its own cost, measured
    sampler.stop()  # twice is harmless
    assert nvml.shutdowns == 1
    assert len(sampler.samples) == len(samples)


def test_recorded_h100_series_summarised():
    rows = recorded_series()
    nvml = FakeNvml()
    sampler = TelemetrySampler(0, nvml=nvml)
    sampler.open()
    for row in rows:
        nvml.apply_row(row)
        sampler.sample_once()
    sampler.stop()
    summary = summarize(sampler.samples)
    assert summary["samples"] == len(rows)
    assert summary["temp_c_max"] == max(r["temp_c"] for r in rows)
    assert summary["power_w_max"] == pytest.approx(max(r["power_w"] for r in rows), abs=0.01)
    assert summary["power_limit_w"] == 700.0
    assert summary["sm_mhz_min"] == min(r["sm_mhz"] for r in rows)
    assert summary["energy_j"] == pytest.approx((rows[-1]["energy_mj"] - rows[0]["energy_mj"]) / 1000)
    # The H100 sat on its software power cap (0x4) for most of the run; that is not throttling.
    assert summary["power_capped"] is True
    assert summary["clocks_event_reasons"]["sw_power_cap"] == pytest.approx(292 / 373, abs=1e-3)
    assert summary["throttled"] is False


def test_thermal_slowdown_is_flagged_as_throttling():
    nvml = FakeNvml()
    sampler = TelemetrySampler(0, nvml=nvml)
    sampler.open()
    row = recorded_series()[-1]
    nvml.apply_row(row)
    sampler.sample_once()
    nvml.apply_row({**row, "throttle": 0x4 | 0x20})
    sampler.sample_once()
    sampler.stop()
    summary = summarize(sampler.samples)
    assert summary["throttled"] is True
    assert summary["clocks_event_reasons"] == {"sw_power_cap": 1.0, "sw_thermal_slowdown": 0.5}


def test_energy_falls_back_to_integrated_power():
    nvml = FakeNvml()
    nvml.unsupported.add("energy_mj")
    sampler = TelemetrySampler(0, nvml=nvml)
    sampler.open()
    nvml.apply_row({**recorded_series()[0], "power_w": 100.0})
    s0 = sampler.sample_once()
    time.sleep(0.05)
    s1 = sampler.sample_once()
    sampler.stop()
    assert energy_joules([s0, s1]) == pytest.approx(100.0 * (s1.t_mono - s0.t_mono))
    assert summarize([]) == {"samples": 0}


def _sample_rows(nvml, rows):
    sampler = TelemetrySampler(0, nvml=nvml)
    assert sampler.open()
    for row in rows:
        nvml.apply_row(row)
        sampler.sample_once()
    sampler.stop()
    return sampler


def test_a_driver_older_than_535_is_asked_the_throttle_reasons_call():
    """Before 535 the driver library has no nvmlDeviceGetCurrentClocksEventReasons (pynvml still has
    the Python function): the sampler asks once, then uses the old name for the same mask."""
    rows = recorded_series()
    nvml = FakeNvml(driver="525.147.05")
    sampler = _sample_rows(nvml, rows)
    assert [s.clocks_event_mask for s in sampler.samples] == [r["throttle"] for r in rows]
    assert nvml.calls["nvmlDeviceGetCurrentClocksEventReasons"] == 1
    assert nvml.calls["nvmlDeviceGetCurrentClocksThrottleReasons"] == len(rows)
    assert sampler.errors == 0
    summary = summarize(sampler.samples)
    assert summary["throttled"] is False and summary["power_capped"] is True
    assert summary["clocks_event_reasons"]["sw_power_cap"] == pytest.approx(292 / 373, abs=1e-3)


def test_clock_reasons_nvml_cannot_give_are_unknown_not_unthrottled():
    rows = recorded_series()[:20]
    nvml = FakeNvml(driver="525.147.05")
    nvml.lacks.add("nvmlDeviceGetCurrentClocksThrottleReasons")  # neither name answers
    sampler = _sample_rows(nvml, rows)
    assert all(s.clocks_event_mask is None for s in sampler.samples)
    assert sampler.samples[0].power_w is not None  # the rest of each sample is still read
    assert nvml.calls["nvmlDeviceGetCurrentClocksThrottleReasons"] == 1  # not asked again every 100 ms
    summary = summarize(sampler.samples)
    assert summary["throttled"] is None and summary["power_capped"] is None
    assert summary["clocks_event_reasons"] is None
    nvml = FakeNvml()
    nvml.unsupported.add("clocks_event_reasons")  # a GPU that answers NotSupported: unknown too
    assert summarize(_sample_rows(nvml, rows).samples)["throttled"] is None


def _synthetic(period_s, until_s, *, counter, power):
    """Samples every `period_s` from 0 to `until_s` of a GPU whose counter and power are known exactly."""
    out = []
    for k in range(round(until_s / period_s) + 1):
        t = k * period_s
        out.append(TelemetrySample(t_unix=1e9 + t, t_mono=t, energy_mj=counter(t), power_w=power(t)))
    return out


def test_energy_of_a_window_reads_the_counter_at_its_edges():
    """A 300 W GPU sampled at 10 Hz: an iteration from 0.05 s to 1.03 s used exactly 294 J. The samples
    inside the window span only 0.1-1.0 s (270 J, 8% low): the counter is interpolated at the edges."""
    samples = _synthetic(0.1, 2.0, counter=lambda t: round(300_000 * t), power=lambda t: 300.0)
    assert energy_joules(samples, 0.05, 1.03) == pytest.approx(294.0, rel=1e-9)
    assert energy_joules(samples_between(samples, 0.05, 1.03)) == pytest.approx(270.0)  # the span of the samples
    assert energy_joules(samples, 0.2, 0.2) == pytest.approx(0.0)
    # A window past the last sample: only as far as the counter was read, never extrapolated.
    assert energy_joules(samples, 1.95, 2.5) == pytest.approx(15.0)
    assert energy_joules(samples, 2.5, 3.0) is None


def test_energy_without_the_counter_integrates_power_over_the_exact_window():
    """Power ramping 100 -> 300 W over 2 s (P = 100 + 100 t) and no energy counter: the integral from
    0.05 to 1.03 s is 100 * 0.98 + 50 * (1.03**2 - 0.05**2), exactly, for a linear ramp."""
    samples = _synthetic(0.1, 2.0, counter=lambda t: None, power=lambda t: 100.0 + 100.0 * t)
    exact = 100.0 * 0.98 + 50.0 * (1.03**2 - 0.05**2)
    assert energy_joules(samples, 0.05, 1.03) == pytest.approx(exact, rel=1e-9)
    # a counter that went backwards (the driver reloaded) is not trusted: power is integrated instead
    reset = [TelemetrySample(**{**s.__dict__, "energy_mj": 5_000_000 - k}) for k, s in enumerate(samples)]
    assert energy_joules(reset, 0.05, 1.03) == pytest.approx(exact, rel=1e-9)
