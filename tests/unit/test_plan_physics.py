"""Issue 16: plan's physics on cards it has not seen (power and clocks, traffic, bands, software, host).

Each test names the defect it pins down; they fail on the model that counted per-op traffic with one
efficiency at the datasheet peak.
"""

from __future__ import annotations

import pytest

from svdops.errors import BadInputError
from svdops.plan.calibrate import (
    MEMORY_EFFICIENCY,
    anchor_points,
    calibrate,
    per_call,
    run_points,
)
from svdops.plan.costmodel import Workload, device_named, stage_floors, workload_for_scenario
from svdops.plan.predict import planning_calibration, predict, predict_stages
from svdops.plan.public import parse_rows, public_rows
from svdops.plan.validate import public_validation_points, validate
from svdops.runs.documents import Config, OptimizeRecord, Results
from svdops.runs.store import Run

XT = workload_for_scenario("svd-xt-25f")


@pytest.fixture(scope="module")
def cal():
    return planning_calibration()


def _device(name: str):
    device = device_named(name)
    assert device is not None
    return device


def test_the_h100_is_power_bound_at_the_clock_its_telemetry_shows_and_a_350_w_hopper_more_so():
    h100 = _device("H100 SXM").clocks
    assert h100.power_bound and h100.sustained_mhz == pytest.approx(1933, abs=1)  # telemetry mean under the cap
    pcie = _device("H100 PCIe").clocks  # 756 TFLOP/s on 350 W
    assert pcie.power_bound and pcie.fraction < 0.9 and "350 W cap" in pcie.basis
    for name in ("RTX 3090", "A100 SXM 80GB", "RTX 4090"):
        assert not _device(name).clocks.power_bound, name  # they hold their boost clock on this load


def test_the_h100_unet_is_no_longer_mostly_memory_bound():
    # per-op unfused traffic made 57% of the floor memory-bound; per-class, at the sustained clock
    unet = per_call(stage_floors(XT, _device("H100 SXM"))["unet"], XT.steps)
    assert unet.memory_s / unet.floor_s < 0.5
    # and of the predicted 0.664 s step, the memory-bound ops take about a quarter
    assert (unet.memory_s / MEMORY_EFFICIENCY) / 0.664 < 0.3


def test_a_faster_hbm_card_at_the_same_power_cap_gets_no_large_gain(cal):
    h100 = predict_stages(XT, _device("H100 SXM"), cal).unet_step_s.value
    h200 = predict_stages(XT, _device("H200"), cal)
    # 4.8 vs 3.35 TB/s, same GH100, same 700 W: the step's energy over the cap bounds it
    assert h200.unet_step_s.value >= 0.95 * h100
    assert "energy floor" in h200.unet_step_s.basis


def test_the_rtx_3090_public_figure_is_predicted_nearer_than_before():
    points, scored, meta, _ = public_validation_points()
    report = validate([*anchor_points(), *points], scored, meta)
    (row,) = [r for r in report.rows if r.held_out == "RTX 3090"]
    # was +31% (one power-capped H100 efficiency carried to a card running near its peak); the 5%
    # same-architecture goal is still missed with the data found: the benchmark reports it
    assert row.metric == "e2e_s" and abs(row.error) < 0.25
    assert row.measured == 100.5 and "CoursIA" in row.source


def test_held_out_rows_carry_a_band_built_from_the_other_rows_and_its_count():
    points, scored, meta, _ = public_validation_points()
    report = validate([*anchor_points(), *points], scored, meta)
    a800 = next(r for r in report.rows if r.point == "public:a800-comfyui-onediff-409")
    assert a800.relation == "cross-arch" and a800.band is not None and a800.band_points >= 1
    assert a800.band == pytest.approx(max(abs(r.error) for r in report.rows
                                          if r.relation == "cross-arch" and r.point != a800.point))
    bands = report.bands()
    assert bands["cross-arch"][1] == len({r.point for r in report.rows if r.relation == "cross-arch"})
    # a figure faster than the card's roofline is reported, never scored
    assert [p for p, _ in report.not_scored] == ["public:rtx4090-gigagpu-blog"]


def test_v100_is_marked_with_the_reason_and_the_last_software_that_runs_it(cal):
    p = predict(XT, _device("V100 SXM2 32GB"), cal)
    (note,) = [n for n in p.notes if "cannot run" in n]
    assert "sm_70" in note and "CUDA 12.6" in note
    assert not any("cannot run" in n for n in predict(XT, _device("RTX 3090"), cal).notes)


def _run(tmp_path, config_optimize=None, dtype="fp16"):
    summary = {"unet_step_s": {"median": 0.30}, "decode_s": {"median": 1.0}, "e2e_s": {"median": 9.0}}
    point = {"model": "svd-xt", "frames": 25, "height": 576, "width": 1024, "steps": 25, "decode_chunk": 8,
             "dtype": dtype}
    config = Config.read({"optimize": config_optimize} if config_optimize else {})
    return Run(tmp_path, None, config, Results.read({"gpu": "NVIDIA H100 80GB HBM3", "points": [
        {"point": 0, "status": "ok", "config": point, "summary": summary}]}))


def test_calibration_ignores_optimized_runs(tmp_path):
    plain, _ = run_points(_run(tmp_path))
    assert len(plain) == 1
    assert len(run_points(_run(tmp_path, {"level": "none"}))[0]) == 1  # what a plain bench run records
    optimized = _run(tmp_path, {"level": "max", "applied": ["compile", "fp8"]})
    assert isinstance(optimized.config.optimize, OptimizeRecord)
    points, notes = run_points(optimized)
    assert points == [] and "optimized run" in notes[0] and "never calibrates the eager model" in notes[0]
    points, notes = run_points(_run(tmp_path, dtype="fp8"))
    assert points == [] and "quantized" in notes[0]
    # so a 2x faster optimized H100 leaves the eager prediction where the anchors put it
    base = predict_stages(XT, _device("H100 SXM"), calibrate(anchor_points())).unet_step_s.value
    assert base == pytest.approx(0.664, rel=0.01)


def test_host_time_grows_with_frames_and_offload_is_priced_from_the_measured_copy(cal):
    h100 = _device("H100 SXM")
    assert cal.host_seconds(h100, 25).value > cal.host_seconds(h100, 14).value > 0
    offload = predict_stages(Workload("svd-xt", 25, 576, 1024, 25, 2, cpu_offload=True), h100, cal)
    plain = predict_stages(Workload("svd-xt", 25, 576, 1024, 25, 2), h100, cal)
    assert "staging copy" in offload.other_s.basis or offload.other_s.value > plain.other_s.value
    # about 4.3 GiB of fp16 weights at the 6.7 GB/s staging copy: under a second more per video
    assert 0.3 < offload.other_s.value - plain.other_s.value < 1.0


def test_public_rows_are_sourced_and_a_bad_row_is_refused_by_id():
    rows = public_rows()
    assert all(r.source for r in rows) and {r.engine for r in rows} <= {"eager", "tensorrt"}
    bad = {"rows": [{"id": "x", "device": "RTX 3090", "source": "s", "metrics": ["e2e_s"], "measured": {"e2e_s": -1},
                     "workload": {"model": "svd-xt", "frames": 25, "height": 576, "width": 1024, "steps": 25,
                                  "decode_chunk": 8}}]}
    with pytest.raises(BadInputError, match="'x': e2e_s must be a positive"):
        parse_rows(bad, "test")
    bad["rows"][0]["device"] = "GTX 480"
    with pytest.raises(BadInputError, match="unknown GPU"):
        parse_rows(bad, "test")
    with pytest.raises(BadInputError, match="no `rows`"):
        parse_rows([], "test")


def test_every_clock_figure_names_the_stored_page_that_states_it_or_says_it_is_unverified():
    """The clock table was once written from memory: each figure must now be stated, as the number it
    is, in a source that names a stored page (a URL), be marked `unverified:`, or be null with the
    reason it was not found."""
    from svdops.plan.clocks import clock_rows

    for name, row in clock_rows().items():
        source = str(row.get("source", ""))
        for key in ("boost_mhz", "base_mhz"):
            value = row.get(key)
            if value is None:
                assert source.startswith("not found in a stored source"), (name, key)
            elif "unverified" not in source:
                assert "https://" in source and f"{value} MHz" in source, (name, key, value)
