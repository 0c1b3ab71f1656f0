"""Where each --optimize lever applies and why it declines: pure decisions, no GPU needed."""

from __future__ import annotations

import importlib.util

import pytest
from click.testing import CliRunner

from svdops.bench.config import BenchRequest, pixel_multiple, resolve_points
from svdops.bench.optimize import levers as lv
from svdops.bench.optimize.attention import CUDA_GRID_LIMIT, batch_per_chunk
from svdops.cli.bench import bench
from svdops.errors import BadInputError

H100 = (9, 0)
A100 = (8, 0)
T4 = (7, 5)


def plan(level: str, **options):
    settings = {"compile_mode": "default", "compile_requested": False, "offload": False, "height": 576, "width": 1024}
    return lv.levers_for(level, **{**settings, **options})


def by_name(levers):
    return {lever.name: lever for lever in levers}


@pytest.mark.parametrize("name", ["sdpa-chunked", "fp8-linear", "vae-decode-chunk"])
def test_cuda_only_levers_decline_on_the_cpu_saying_why(name):
    lever = by_name(plan("max"))[name]
    decision = lever.applies_to("cpu", "fp32", None)
    assert not decision.applies and decision.reason.startswith("CUDA only:"), decision


@pytest.mark.parametrize("mode, why", [("reduce-overhead", "CUDA graphs"), ("max-autotune", "Triton")])
def test_cuda_compile_modes_decline_on_the_cpu_even_when_compile_is_asked_for(mode, why):
    for lever in (lv.CompileUNet(mode, requested=True), lv.CompileVAEDecoder(mode, requested=True)):
        decision = lever.applies_to("cpu", "fp32", None)
        assert not decision.applies and "CUDA only" in decision.reason and why in decision.reason


def test_compile_on_the_cpu_only_when_the_user_asks_for_it():
    assert not lv.CompileUNet("default").applies_to("cpu", "fp32", None).applies
    assert "--compile" in lv.CompileUNet("default").applies_to("cpu", "fp32", None).reason
    assert lv.CompileUNet("default", requested=True).applies_to("cpu", "fp32", None).applies
    for mode in lv.COMPILE_MODES:
        assert lv.CompileUNet(mode).applies_to("cuda:0", "fp16", H100).applies


def test_compile_declines_under_model_cpu_offload():
    decision = lv.CompileUNet("default", offload=True).applies_to("cuda:0", "fp16", H100)
    assert not decision.applies and "offload" in decision.reason


def test_chunked_attention_needs_half_precision_and_an_ampere_or_newer_gpu():
    lever = lv.ChunkedAttention()
    assert lever.applies_to("cuda:0", "fp16", H100).applies
    assert lever.applies_to("cuda:0", "bf16", A100).applies
    assert "sm75" in lever.applies_to("cuda:0", "fp16", T4).reason
    assert "fp16/bf16" in lever.applies_to("cuda:0", "fp32", H100).reason


def test_fp8_needs_ada_or_hopper_half_precision_and_torchao(monkeypatch):
    real_find_spec = importlib.util.find_spec

    def installed(name):
        return object() if name == "torchao" else real_find_spec(name)

    monkeypatch.setattr(lv.importlib.util, "find_spec", installed)
    lever = lv.Fp8Linear()
    assert lever.level == "max"
    assert lever.applies_to("cuda:0", "bf16", H100).applies
    assert lever.applies_to("cuda:0", "fp16", (8, 9)).applies  # Ada
    assert "sm80" in lever.applies_to("cuda:0", "fp16", A100).reason
    assert "fp16 or bf16" in lever.applies_to("cuda:0", "fp32", H100).reason
    monkeypatch.setattr(lv.importlib.util, "find_spec", lambda name: None)
    decision = lever.applies_to("cuda:0", "fp16", H100)
    assert not decision.applies and "pip install 'svdops[optimize]'" in decision.reason


def test_levels_choose_their_levers_and_compile_comes_last():
    assert plan("none") == []
    safe, full = plan("safe"), plan("max")
    assert {lever.level for lever in safe} == {"safe", "declined"}
    assert {"fp8-linear", "vae-decode-chunk"} <= set(by_name(full)) and not {"fp8-linear"} & set(by_name(safe))
    active = [lever.name for lever in full if lever.level != "declined"]
    assert active[-2:] == ["compile-vae", "compile-unet"]  # so compile sees the processors and fp8 weights
    declined = [lever for lever in full if lever.level == "declined"]
    assert declined
    for lever in declined:
        decision = lever.applies_to("cuda:0", "fp16", H100)
        assert not decision.applies and decision.reason  # every set-aside lever says why, everywhere


def test_chunk_size_keeps_batch_times_heads_inside_the_cuda_grid():
    assert batch_per_chunk(5) == 13_107 and batch_per_chunk(5) * 5 <= CUDA_GRID_LIMIT
    # SVD-XT's top level: 2 (guidance) x 72 x 128 latent pixels, 5 heads -> two calls instead of one refused one.
    batch = 2 * 72 * 128
    assert batch * 5 > CUDA_GRID_LIMIT and -(-batch // batch_per_chunk(5)) == 2
    assert batch_per_chunk(10) == 6_553 and batch_per_chunk(100_000) == 1


def test_wide_decode_sizes_the_chunk_from_free_memory():
    lever = lv.WideDecode(576, 1024)
    assert lever.frames_that_fit(40 * 2**30) == 48  # 0.6 x 40 GiB at 0.5 GiB a frame
    assert lever.frames_that_fit(0) == 1
    assert lv.WideDecode(288, 512).frames_that_fit(40 * 2**30) == 192  # a quarter of the pixels


def test_optimize_and_compile_mode_resolve_into_every_point_with_a_warm_up():
    (point,) = resolve_points(BenchRequest(scenario="tiny", optimize="safe", warmup=0), "cpu")
    assert (point.optimize, point.compile_mode, point.warmup) == ("safe", "default", 1)
    (point,) = resolve_points(BenchRequest(scenario="tiny", warmup=0), "cpu")
    assert (point.optimize, point.warmup) == ("none", 0)
    with pytest.raises(BadInputError, match="--optimize"):
        resolve_points(BenchRequest(scenario="tiny", optimize="fast"), "cpu")
    with pytest.raises(BadInputError, match="--compile-mode"):
        resolve_points(BenchRequest(scenario="tiny", compile_mode="turbo"), "cpu")


def test_height_and_width_must_be_multiples_of_what_the_pipeline_needs():
    assert pixel_multiple("tiny") == 8 and pixel_multiple("svd-xt") == 8  # the UNet takes any latent size
    with pytest.raises(BadInputError, match="--height 60 is not a multiple of 8") as info:
        resolve_points(BenchRequest(scenario="tiny", height=60), "cpu")
    assert "56 or 64" in info.value.hint
    (point,) = resolve_points(BenchRequest(scenario="svd-xt-25f", height=584, width=1032), "cuda:0")
    assert (point.height, point.width) == (584, 1032)


@pytest.mark.parametrize("extra", [[], ["--workload", "infer-dp", "--nproc-per-node", "2"]], ids=["single", "multi"])
def test_cli_refuses_a_bad_height_before_building_anything(tmp_path, extra):
    store = tmp_path / "runs"
    args = ["--scenario", "tiny", "--device", "cpu", "--store", str(store), "--height", "60", *extra]
    result = CliRunner().invoke(bench, args)
    assert result.exit_code == 2, result.output
    assert "--height 60 is not a multiple of 8" in result.output and "Traceback" not in result.output
    assert not store.exists() or not any(store.iterdir())


def test_cli_keeps_optimize_to_the_single_gpu_bench(tmp_path):
    args = ["--scenario", "tiny", "--device", "cpu", "--store", str(tmp_path), "--optimize", "safe",
            "--workload", "infer-dp", "--nproc-per-node", "2"]  # fmt: skip
    result = CliRunner().invoke(bench, args)
    assert result.exit_code == 2 and "--optimize runs on the single-GPU bench only" in result.output
