"""The quality gate's measures on synthetic frames: identical, slightly off, broken."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from svdops.bench.optimize import quality


def video(seed=0, frames=3, size=48):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    base = np.stack([x * 4, y * 4, (x + y) * 2], axis=-1).astype(np.float64)
    return np.stack([np.clip(base + rng.normal(0, 10, base.shape) + 5 * f, 0, 255) for f in range(frames)]).astype(
        np.uint8
    )


def test_identical_output_passes_with_capped_psnr_and_unit_ssim():
    ref = video()
    result = quality.evaluate(ref, ref.copy())
    assert result.passed and result.psnr_db == quality.PSNR_IDENTICAL_DB and result.ssim == pytest.approx(1.0)
    assert result.frames == 3 and "passed" in result.describe()


def test_rounding_level_differences_pass():
    ref = video()
    noise = np.random.default_rng(1).integers(-1, 2, ref.shape)
    result = quality.evaluate(ref, np.clip(ref.astype(int) + noise, 0, 255).astype(np.uint8))
    assert result.passed and result.psnr_db > 45 and result.ssim > 0.99


def test_a_broken_output_fails_on_both_measures():
    ref = video()
    broken = np.random.default_rng(2).integers(0, 256, ref.shape, dtype=np.uint8)
    result = quality.evaluate(ref, broken)
    assert not result.passed and result.psnr_db < 15 and result.ssim < 0.2
    assert "FAILED" in result.describe() and f"needs >= {quality.PSNR_MIN_DB:g}" in result.describe()


def test_a_brightness_shift_keeps_structure_but_fails_psnr():
    ref = video()
    shifted = np.clip(ref.astype(int) + 40, 0, 255).astype(np.uint8)
    result = quality.evaluate(ref, shifted)
    assert not result.passed and result.psnr_db < quality.PSNR_MIN_DB


def test_one_bad_frame_shows_in_the_worst_frame_psnr():
    ref = video(frames=4)
    test = ref.copy()
    test[2] = 255 - test[2]
    whole, worst = quality.psnr_db(ref, test)
    assert worst < whole and worst < 10


def test_different_shapes_fail_without_comparing():
    result = quality.evaluate(video(frames=3), video(frames=2))
    assert not result.passed and "shapes differ" in result.method


def test_pil_frames_and_float_arrays_are_read_as_uint8_rgb():
    ref = video(frames=2)
    pil = [[Image.fromarray(frame) for frame in ref]]  # the pipeline's output: a list per video
    assert np.array_equal(quality.frames_array(pil), ref)
    assert np.array_equal(quality.frames_array(ref[None].astype(np.float32) / 255.0), ref)


def test_the_thresholds_are_the_ones_derived_from_the_recorded_calibration():
    import json
    from pathlib import Path

    recorded = json.loads((Path(__file__).parents[2] / quality.CALIBRATION).read_text())
    derived = quality.derive_thresholds(recorded)
    assert recorded["derived"] == derived  # the results file says what the script derived
    assert derived["psnr_min_db"] == quality.PSNR_MIN_DB and derived["ssim_min"] == quality.SSIM_MIN
    assert derived["separated"]  # harmless variants and other seeds were apart on both measures
    # Every harmless variant passes the gate and every other seed fails it.
    for row in recorded["rows"]:
        passes = row["psnr_db"] >= quality.PSNR_MIN_DB and row["ssim"] >= quality.SSIM_MIN
        assert passes == (row["kind"] == "harmless"), row


def test_derivation_keeps_the_margin_and_stays_above_another_video():
    calibration = {"harmless_min": {"psnr_db": 41.2, "ssim": 0.990}, "different_max": {"psnr_db": 14.0, "ssim": 0.4}}
    derived = quality.derive_thresholds(calibration)
    assert derived["psnr_min_db"] == 38.0 and derived["ssim_min"] == 0.98 and derived["separated"]
    # A margin that would pass another video is cut back to halfway between the two.
    close = {"harmless_min": {"psnr_db": 20.0, "ssim": 0.7}, "different_max": {"psnr_db": 18.0, "ssim": 0.5}}
    derived = quality.derive_thresholds(close)
    assert derived["psnr_min_db"] == 19.0 and derived["ssim_min"] == 0.6


def test_the_result_says_what_was_compared_with_what():
    result = quality.evaluate(video(), video())
    doc = result.to_dict()
    assert "--optimize none" in doc["reference"] and "levers applied" in doc["candidate"]
    assert doc["thresholds_from"].startswith(quality.CALIBRATION)
    assert doc["psnr_min_db"] == quality.PSNR_MIN_DB and doc["psnr_db"] == quality.PSNR_IDENTICAL_DB
    assert "against the pipeline as built" in result.describe()
