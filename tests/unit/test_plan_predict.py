"""Calibration on the anchors and on recorded runs, predictions, fit decisions, validation."""

from __future__ import annotations

import dataclasses

import pytest

from svdops.errors import BadInputError
from svdops.plan.calibrate import Measured, anchor_points, calibrate, default_calibration
from svdops.plan.costmodel import CPU_DEVICE, device_named, workload_for_scenario
from svdops.plan.predict import FITS, NO, TIGHT, predict, rank, select_devices
from svdops.plan.prices import parse_gpu_prices
from svdops.plan.validate import validate

XT = workload_for_scenario("svd-xt-25f")


@pytest.fixture(scope="module")
def cal():
    return default_calibration()


def _device(name: str, **changes):
    device = device_named(name)
    assert device is not None
    return dataclasses.replace(device, **changes)


def test_the_anchor_gpu_is_predicted_as_measured(cal):
    p = predict(XT, _device("H100 SXM"), cal)
    assert p.stages.unet_step_s.value == pytest.approx(0.664, rel=0.01)
    assert p.stages.decode_s.value == pytest.approx(1.73, rel=0.02)
    assert p.stages.e2e_s.value == pytest.approx(19.18, rel=0.05)
    assert p.stages.peak_allocated_gib.value == pytest.approx(15.06, rel=0.03)
    assert p.energy_j_per_video is not None and p.energy_j_per_video.value == pytest.approx(13_000, rel=0.05)
    assert p.stages.unet_step_s.basis == "measured on H100 SXM" and p.fits == FITS
    compiled = predict(XT.replace(compile=True), _device("H100 SXM"), cal)
    assert compiled.stages.unet_step_s.value == pytest.approx(0.4886, rel=0.01)


def test_other_cards_say_how_far_they_are_from_a_measurement(cal):
    h200 = predict(XT, _device("H200"), cal)
    b200 = predict(XT, _device("B200"), cal)
    l4 = predict(XT, _device("L4"), cal)
    assert "Hopper, measured on H100 SXM" in h200.stages.unet_step_s.basis
    assert h200.stages.unet_step_s.band == pytest.approx(0.10)
    # same peak FLOPs as the H100, more bandwidth: a little faster, never slower
    assert 0.5 < h200.stages.unet_step_s.value < 0.664
    assert "no Blackwell measurement" in b200.stages.unet_step_s.basis
    assert b200.stages.unet_step_s.band == pytest.approx(0.35)
    assert l4.stages.unet_step_s.value > 5 * h200.stages.unet_step_s.value
    ranked = rank([l4, b200, h200])
    assert [p.device.name for p in ranked] == ["B200", "H200", "L4"]


@pytest.mark.parametrize(("memory_gb", "verdict", "change"), [
    (10, FITS, "model CPU offload"),
    (12, FITS, "forward chunking"),
    (16, TIGHT, None),
    (24, FITS, None),
    (48, FITS, None),
    (80, FITS, None),
])
def test_fit_decisions_by_card_memory(cal, memory_gb, verdict, change):
    p = predict(XT, _device("RTX 4090", memory_gb=memory_gb), cal)
    assert p.fits == verdict
    if change is None:
        assert p.change is None and p.workload == XT
    else:
        assert p.fits_as_asked == NO and p.change is not None and p.change.startswith(change)
        assert p.change_cost_s is not None and p.change_cost_s > 0
        assert p.stages.peak_allocated_gib.high <= memory_gb * 0.99 - 0.6


def test_a_card_too_small_for_anything_says_so(cal):
    p = predict(XT, _device("L4", memory_gb=4), cal)
    assert p.fits == NO and any("does not fit" in n for n in p.notes)


def test_a_smaller_decode_chunk_is_the_cheap_fix_when_decode_sets_the_peak(cal):
    # decode chunk 8 peaks at 15.1 GiB and the UNet at 12.1: a 14.5 GiB card needs only chunk 4
    p = predict(XT, _device("RTX 4090", memory_gb=15), cal)
    assert p.change == "decode chunk 4" and 0 < (p.change_cost_s or 0) < 1.0


def test_boxes_prices_and_energy(cal):
    one = predict(XT, _device("L40S"), cal)
    box = predict(XT, _device("L40S", price_usd_per_hour=1.0), cal, count=8)
    assert box.videos_per_hour.value == pytest.approx(8 * one.videos_per_hour.value)
    assert box.usd_per_1000_videos is not None
    assert box.usd_per_1000_videos.value == pytest.approx(1000 * 8 / box.videos_per_hour.value)
    assert "assumed" in box.scaling_basis
    assert parse_gpu_prices(["L40S=0.99", "NVIDIA H100 80GB HBM3=2"]) == {"L40S": 0.99, "H100 SXM": 2.0}
    assert [d.price_usd_per_hour for d in select_devices(["L40S"], {"L40S": 0.5})] == [0.5]
    for bad in (["L40S"], ["Imaginary=1"], ["L40S=cheap"], ["L40S=-1"]):
        with pytest.raises(BadInputError):
            parse_gpu_prices(bad)
    with pytest.raises(BadInputError, match="unknown GPU"):
        select_devices(["GTX 480"])


def test_calibration_on_a_recorded_run(tmp_path, cal):
    # A recorded run of an H200 (same results.json layout the bench writes) moves the H200 prediction
    # onto its own measurement, and the basis says so.
    from svdops.plan.calibrate import run_points
    from svdops.runs.documents import Config, Results
    from svdops.runs.store import Run

    summary = {"unet_step_s": {"median": 0.60, "p90": 0.61}, "decode_s": {"median": 1.6},
               "e2e_s": {"median": 17.5}, "peak_allocated_gib": 15.1, "energy_j_per_video": 11_800}
    config = {**dataclasses.asdict(XT), "max_guidance_scale": 3.0}
    run = Run(tmp_path, None, Config(), Results.read({"gpu": "NVIDIA H200", "points": [
        {"point": 0, "status": "ok", "config": config, "summary": summary},
        {"point": 1, "status": "oom", "config": config, "summary": {}},
    ]}))
    points, notes = run_points(run)
    assert len(points) == 1 and not notes
    assert points[0].power_fraction == pytest.approx(11_800 / 17.5 / 700)
    mixed = calibrate([*anchor_points(), *points])
    h200 = predict(XT, _device("H200"), mixed)
    assert h200.stages.unet_step_s.value == pytest.approx(0.60, rel=0.01)
    assert h200.stages.unet_step_s.basis == "measured on H200"
    report = validate(mixed.points)
    assert report.possible and {r.held_out for r in report.rows} == {"H100 SXM", "H200"}
    assert all(r.relation == "same-arch" for r in report.rows)


def test_validation_with_one_gpu_says_it_cannot_hold_one_out():
    report = validate(anchor_points())
    assert not report.possible and not report.rows
    assert "cannot hold one out" in report.message and "H100 SXM" in report.message


def test_validation_with_a_cpu_point_labels_it_code_path_only():
    from svdops.plan.calibrate import CalibrationPoint

    tiny = workload_for_scenario("tiny")
    cpu = CalibrationPoint("cpu-run", CPU_DEVICE, tiny, Measured(unet_step_s=1.3, decode_s=0.38, e2e_s=4.4), "test")
    report = validate([*anchor_points(), cpu])
    assert report.possible and report.rows and {r.relation for r in report.rows} == {"cpu"}
    assert all(r.target is None and r.passed is None for r in report.rows)
    assert "only one GPU was measured" in report.message and "not predicted" in report.message
