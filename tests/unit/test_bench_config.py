"""Scenarios as data, option overrides and sweeps: pure, no torch."""

from __future__ import annotations

import random

import pytest

from svdops.bench.config import (
    BenchRequest,
    load_scenario,
    model_configs,
    parse_sweep,
    resolve_points,
)
from svdops.bench.config import largest_fitting as largest
from svdops.bench.stats import describe, percentile
from svdops.errors import BadInputError
from svdops.scenarios import scenario_names


def test_shipped_scenarios_match_the_issue():
    assert scenario_names() == ["svd-xt-25f", "svd-14f", "low-vram", "tiny"]
    xt, svd, low, tiny = (load_scenario(n) for n in scenario_names())
    for s in (xt, svd):
        assert (s.height, s.width, s.steps, s.decode_chunk, s.max_guidance_scale) == (576, 1024, 25, 8, 3.0)
        assert not s.cpu_offload and s.needs_gpu
    assert (xt.frames, xt.unet_num_frames, svd.frames, svd.unet_num_frames) == (25, 25, 14, 14)
    assert low.cpu_offload and low.forward_chunking and low.decode_chunk == 2
    assert tiny.model == "tiny" and not tiny.needs_gpu


def test_model_configs_are_the_released_ones_and_tiny_keeps_scheduler():
    xt = model_configs("svd-xt")
    assert xt["unet"]["block_out_channels"] == [320, 640, 1280, 1280]
    assert "_class_name" not in xt["unet"]
    assert xt["image_encoder"]["num_hidden_layers"] == 32
    tiny = model_configs("tiny")
    assert tiny["unet"]["block_out_channels"] == [32, 64]
    assert tiny["scheduler"] == xt["scheduler"]
    assert tiny["image_encoder"]["image_size"] == 224  # the pipeline resizes to 224 for CLIP
    assert tiny["image_encoder"]["projection_dim"] == tiny["unet"]["cross_attention_dim"]
    model_configs("tiny")["unet"]["block_out_channels"].append(1)
    assert model_configs("tiny")["unet"]["block_out_channels"] == [32, 64]  # callers get copies


def test_options_override_the_scenario_and_device_sets_the_dtype():
    (gpu,) = resolve_points(BenchRequest(scenario="svd-14f", steps=3, decode_chunk=2), "cuda:0")
    assert (gpu.frames, gpu.steps, gpu.decode_chunk, gpu.dtype, gpu.unet_batch) == (14, 3, 2, "fp16", 2)
    (cpu,) = resolve_points(BenchRequest(scenario="tiny", videos_per_call=2), "cpu")
    assert (cpu.dtype, cpu.unet_batch) == ("fp32", 4)
    (compiled,) = resolve_points(BenchRequest(scenario="tiny", compile=True, warmup=0), "cpu")
    assert compiled.warmup == 1  # compilation never lands in a timed iteration


def test_sweep_is_a_cross_product_in_order():
    points = resolve_points(BenchRequest(scenario="tiny", sweep=("decode_chunk=1,2,4,8", "frames=14,25")), "cpu")
    assert [(p.decode_chunk, p.frames) for p in points] == [
        (1, 14), (1, 25), (2, 14), (2, 25), (4, 14), (4, 25), (8, 14), (8, 25),
    ]  # fmt: skip
    assert points[3].sweep == {"decode_chunk": 2, "frames": 25}
    assert parse_sweep(["num_frames=2,2,3", "decode_chunk_size=4"]) == {"frames": [2, 3], "decode_chunk": [4]}


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["dtype=fp16"], "cannot sweep"),
        (["frames"], "cannot sweep"),
        (["frames=a,b"], "whole numbers"),
        (["frames=0"], "above 0"),
        (["frames=1", "frames=2"], "swept twice"),
    ],
)
def test_bad_sweeps_are_rejected(items, message):
    with pytest.raises(BadInputError, match=message) as err:
        parse_sweep(items)
    assert err.value.where == "--sweep"


def test_bad_requests_name_the_option():
    with pytest.raises(BadInputError, match="unknown scenario") as err:
        resolve_points(BenchRequest(scenario="svd-99f"), "cpu")
    assert "tiny" in (err.value.hint or "")
    with pytest.raises(BadInputError, match="--frames"):
        resolve_points(BenchRequest(scenario="tiny", frames=0), "cpu")
    with pytest.raises(BadInputError, match="iterations"):
        resolve_points(BenchRequest(scenario="tiny", iterations=0), "cpu")
    with pytest.raises(BadInputError, match="dtype"):
        resolve_points(BenchRequest(scenario="tiny", dtype="int8"), "cpu")


def test_largest_fitting_configuration():
    points = resolve_points(BenchRequest(scenario="tiny", sweep=("decode_chunk=1,2,4,8", "frames=14,25")), "cpu")
    fits = {(1, 14), (1, 25), (2, 14), (2, 25), (4, 14), (8, 14)}
    statuses = [(p, "ok" if (p.decode_chunk, p.frames) in fits else "oom") for p in points]
    best = largest(statuses)
    assert best is not None and (best.decode_chunk, best.frames) == (2, 25)  # more frames beat a bigger chunk
    assert largest([(p, "oom") for p in points]) is None


def test_percentiles_match_numpys_linear_method():
    rng = random.Random(7)
    values = [rng.uniform(0, 10) for _ in range(17)]
    import numpy as np

    for q in (0, 10, 50, 90, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    assert describe([3.0, None, 1.0, 2.0]) == {"n": 3, "median": 2.0, "p90": 2.8, "min": 1.0, "max": 3.0}
    assert describe([None]) == {"n": 0, "median": None, "p90": None, "min": None, "max": None}
