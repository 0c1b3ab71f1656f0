"""--optimize on the real `tiny` pipeline on the CPU: safe levers keep the output, the gate catches a
broken path, the run folder records every lever; and the compile cache turns cold into warm."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch.nn.attention import SDPBackend

import svdops.bench.optimize as optimize
from svdops.bench import runner
from svdops.bench.config import BenchRequest, resolve_points
from svdops.bench.flops import unet_flops
from svdops.bench.invoke import conditioning_image, pipeline_call
from svdops.bench.models import build_random_pipeline, check_shape
from svdops.bench.optimize import quality
from svdops.bench.optimize.attention import ChunkedSDPAProcessor
from svdops.bench.optimize.levers import ChunkedAttention, CompileUNet, CompileVAEDecoder, FusedProjections, Lever
from svdops.bench.runner import run_bench
from svdops.cli.bench import bench
from svdops.host.facts import HostFacts

pytestmark = [
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
    # importing torch.compile's stack touches torch.jit, which warns about itself: not ours
    pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"),
]

# fp16 carries about 3 decimal digits: a safe lever may move a pixel (in [0, 1]) by no more than this.
FP16_TOLERANCE = 1e-3


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _facts():
    return HostFacts(hostname="opthost", collected_at=datetime.now(UTC).isoformat(), source="local"), None


@pytest.fixture(scope="module")
def point():
    (p,) = resolve_points(BenchRequest(scenario="tiny", steps=2, frames=3), "cpu")
    return p


def frames(pipe, point):
    generator = torch.Generator(device="cpu").manual_seed(point.seed)
    with torch.no_grad():
        out = pipeline_call(pipe, conditioning_image(point), point, steps=point.steps, generator=generator,
                            output_type="np")  # fmt: skip
    return np.asarray(out.frames)


@pytest.fixture(scope="module")
def reference(point):
    pipe, _ = build_random_pipeline(point, "cpu")
    return frames(pipe, point)


# Each safe lever applied directly, past its CPU decision (the attention lever's kernels are CUDA's):
# the math kernel stands in, and a small limit makes the tiny model's temporal attention split.
SAFE_LEVERS = {
    "sdpa-chunked": lambda: [ChunkedAttention(max_batch_heads=512, backends=[SDPBackend.MATH])],
    "fused-qkv": lambda: [FusedProjections()],
    "both": lambda: [ChunkedAttention(max_batch_heads=512, backends=[SDPBackend.MATH]), FusedProjections()],
}


@pytest.mark.parametrize("name", list(SAFE_LEVERS))
def test_each_safe_lever_matches_the_reference_output(point, reference, name):
    pipe, _ = build_random_pipeline(point, "cpu")
    notes = [lever.apply(pipe) for lever in SAFE_LEVERS[name]()]
    assert all(notes)
    out = frames(pipe, point)
    assert out.shape == reference.shape
    assert np.abs(out - reference).max() <= FP16_TOLERANCE
    if name != "fused-qkv":
        processors = {m.processor for m in pipe.unet.modules() if isinstance(getattr(m, "processor", None),
                                                                             ChunkedSDPAProcessor)}  # fmt: skip
        assert any(p.calls_split for p in processors)  # the split really happened, and changed nothing


def test_compile_levers_wrap_the_modules_and_the_pipeline_still_reads_their_configs(point):
    """Nothing is called here (a CPU compile of the UNet takes minutes): what the bench reads from the
    pipeline after the levers, and how diffusers registers the compiled UNet, must still work."""
    pipe, _ = build_random_pipeline(point, "cpu")
    for lever in (CompileVAEDecoder("default", requested=True), CompileUNet("default", requested=True)):
        assert lever.applies_to("cpu", "fp32", None).applies
        assert "torch.compile" in lever.apply(pipe)
    assert hasattr(pipe.unet, "_orig_mod") and hasattr(pipe.vae.decoder, "_orig_mod")
    assert pipe.config["unet"][1] == "UNetSpatioTemporalConditionModel"  # registered as the model, not the wrapper
    check_shape(pipe, point)
    assert unet_flops(dict(pipe.unet.config), batch=2, frames=point.frames, latent_height=32, latent_width=32) > 0


def test_optimize_max_on_the_cpu_records_each_lever_and_passes_the_gate(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "gather_local_facts", lambda use_nvml: _facts())
    args = ["--scenario", "tiny", "--device", "cpu", "--store", str(tmp_path / "runs"), "--steps", "2",
            "--frames", "3", "--iterations", "1", "--optimize", "max"]  # fmt: skip
    result = CliRunner().invoke(bench, args)
    assert result.exit_code == 0, result.output
    assert "applied  fused-qkv" in result.output and "quality gate passed" in result.output
    assert "declined fp8-linear: CUDA only" in result.output
    (run,) = (tmp_path / "runs").iterdir()
    results = json.loads((run / "results.json").read_text())
    opt = results["optimize"]
    assert opt["level"] == "max" and opt["applied"] == ["fused-qkv"] and opt["arch"] is None
    decisions = {lever["name"]: lever for lever in opt["levers"]}
    assert decisions["sdpa-chunked"]["status"] == "declined" and decisions["sdpa-chunked"]["reason"]
    assert decisions["compile-unet"]["status"] == "declined" and "--compile" in decisions["compile-unet"]["reason"]
    assert decisions["channels-last"]["status"] == "declined" and "5-D" in decisions["channels-last"]["reason"]
    gate = opt["quality_gate"]
    assert gate["checked"] and gate["passed"]
    assert gate["psnr_min_db"] == quality.PSNR_MIN_DB and gate["ssim_min"] == quality.SSIM_MIN
    assert gate["frames"] == 3 and gate["psnr_db"] >= quality.PSNR_MIN_DB
    assert results["points"][0]["status"] == "ok" and results["points"][0]["config"]["optimize"] == "max"
    config = json.loads((run / "config.json").read_text())
    assert config["request"]["optimize"] == "max" and config["optimize"]["applied"] == ["fused-qkv"]


class BrokenDecoder(Lever):
    """A deliberately wrong lower-precision path: the VAE's last layer shifted, as a bad fp8 scale would."""

    name = "broken-decoder"
    level = "max"
    summary = "test only"

    def apply(self, pipe):
        with torch.no_grad():
            pipe.vae.decoder.conv_out.bias += 0.6
        return "VAE output shifted"


def test_the_quality_gate_rejects_a_broken_path_and_fails_the_point(tmp_path, monkeypatch):
    monkeypatch.setattr(optimize, "levers_for", lambda level, **kw: [BrokenDecoder()])
    request = BenchRequest(scenario="tiny", store=str(tmp_path / "runs"), steps=2, frames=3, iterations=2,
                           optimize="max", telemetry=False)  # fmt: skip
    outcome = run_bench(request, gather=_facts)
    assert outcome.status == "failed"
    (point,) = outcome.points
    assert point.status == "failed" and "quality gate FAILED" in point.error
    assert len(point.timed) == 1  # judged on the first timed output; nothing more is timed after a failure
    gate = outcome.results.optimize.quality_gate
    assert gate["checked"] and not gate["passed"] and gate["psnr_db"] < quality.PSNR_MIN_DB
    assert outcome.results.optimize.applied == ["broken-decoder"]


def test_safe_without_a_gpu_changes_only_what_it_may_and_skips_the_gate(tmp_path):
    request = BenchRequest(scenario="tiny", store=str(tmp_path / "runs"), steps=1, frames=3, iterations=1,
                           optimize="safe", telemetry=False)  # fmt: skip
    outcome = run_bench(request, gather=_facts)
    assert outcome.status == "ok"
    opt = outcome.results.optimize
    assert opt.applied == ["fused-qkv"] and opt.compile_cache is None
    assert not opt.quality_gate["checked"] and "fp16 tolerance" in opt.quality_gate["why"]
    assert outcome.points[0].point.warmup == 1


COMPILE_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    import torch
    from diffusers.models.attention_processor import Attention
    from torch.nn.attention import SDPBackend
    from svdops.bench.optimize import compile_cache
    from svdops.bench.optimize.attention import ChunkedSDPAProcessor

    cache = compile_cache.configure(sys.argv[1])
    torch.manual_seed(0)
    attn = Attention(query_dim=32, heads=4, dim_head=8).eval()
    attn.fuse_projections()
    attn.set_processor(ChunkedSDPAProcessor(max_batch_heads=16, backends=[SDPBackend.MATH]))
    x = torch.randn(12, 6, 32)
    with torch.no_grad():
        eager = attn(x)
        # fullgraph: the split, the fused projections and the kernel choice must all trace, no graph breaks
        compiled = torch.compile(attn, fullgraph=True)
        t0 = time.perf_counter()
        out = compiled(x)
        seconds = time.perf_counter() - t0
    print(json.dumps({**cache.report(seconds), "max_diff": float((out - eager).abs().max())}))
    """
)


@pytest.mark.slow
def test_compile_cache_is_cold_then_warm_and_the_split_processor_compiles_whole(tmp_path):
    """Two fresh processes compile the same attention block with one cache folder. About 20-60 s on
    two busy cores (Inductor builds C++ on the CPU), hence a small module and `slow`."""
    reports = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", COMPILE_SCRIPT, str(tmp_path / "cache")], capture_output=True,
                              text=True, timeout=170)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        reports.append(json.loads(done.stdout.strip().splitlines()[-1]))
    cold, warm = reports
    assert cold["state"] == "cold" and cold["files_before"] == 0 and cold["fxgraph_cache_miss"] >= 1
    assert warm["state"] == "warm" and warm["files_before"] > 0 and warm["fxgraph_cache_hit"] >= 1
    assert warm["fxgraph_cache_miss"] == 0
    assert cold["max_diff"] <= 1e-5 and warm["max_diff"] <= 1e-5
    assert warm["dir"] == str((tmp_path / "cache").resolve())


@pytest.fixture
def fresh_dynamo():
    # Dynamo keeps compiled code per code object across pipelines: another test's entries would count
    # towards this one's recompile limit.
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.slow
def test_a_shape_sweep_past_the_recompile_limit_is_recorded_as_eager_not_compiled(tmp_path, monkeypatch, fresh_dynamo):
    """`--compile` with a sweep: each new shape fails the compiled code's guards and Dynamo recompiles,
    until torch._dynamo.config.recompile_limit (8) recompiles of the UNet's forward; then it runs that
    shape eagerly and says so only in a log warning. Real Dynamo on the real tiny UNet, the limit set to
    1 so the second shape hits it; the "eager" backend (Dynamo's tracing and guards, no Inductor C++
    build: minutes on two cores) keeps it near a minute and a half."""
    from svdops.bench import models

    monkeypatch.setattr(models, "COMPILE_BACKEND", "eager")
    request = BenchRequest(scenario="tiny", store=str(tmp_path / "runs"), steps=1, frames=2, iterations=1, warmup=1,
                           compile=True, sweep=("decode_chunk=1,2", "height=64,48"), telemetry=False)  # fmt: skip
    # Dynamo's own patcher: monkeypatch's undo of an aliased config key (recompile_limit) left the config
    # broken for every later test in the process ("recompile_limit does not exist")
    with torch._dynamo.config.patch(recompile_limit=1):
        outcome = run_bench(request, gather=_facts)
    assert outcome.status == "ok"
    assert [(p.point.decode_chunk, p.point.height) for p in outcome.points] == [(1, 64), (1, 48), (2, 64), (2, 48)]
    first, swept, back, swept_again = (p.summary.compile for p in outcome.results.points)
    assert first["compiled"] is True and first["graphs_compiled"] >= 1 and first["timed"] == {"compiled": 1, "eager": 0}
    assert swept["compiled"] is False and swept["recompile_limit_hit"] is True
    assert swept["timed"] == {"compiled": 0, "eager": 1} and swept["graphs_compiled"] == 0
    assert "recompile_limit" in swept["why"] and swept["recompile_limit"] == 1
    assert back["compiled"] is True and back["guard_misses"] == 0  # the first shape's code still runs compiled
    assert swept_again["compiled"] is False and swept_again["recompile_limit_hit"] is True
    assert all(p.summary.compile["graph_breaks"] >= 0 for p in outcome.results.points)
    assert [note.split(",")[0] for note in outcome.results.notes if "ran eagerly" in note] == [
        "point 1 ran eagerly", "point 3 ran eagerly"]  # fmt: skip
    written = json.loads((outcome.path / "results.json").read_text())
    assert written["points"][1]["summary"]["compile"]["compiled"] is False


def _decoder_weights_per_call(pipe, point, calls=2):
    """(address, dtype) of a VAE decoder weight at each decode, the encoder's dtype at each encode, the
    dtypes the pipeline cast the whole VAE to, and the outputs."""
    decodes, encodes, casts = [], [], []
    decode, encode, cast = pipe.decode_latents, pipe._encode_vae_image, pipe.vae.to

    def watched_cast(*args, **kwargs):
        casts.append(kwargs.get("dtype"))
        return cast(*args, **kwargs)

    def watched_decode(*args, **kwargs):
        weight = pipe.vae.decoder.conv_in.weight
        decodes.append((weight.data_ptr(), weight.dtype))
        return decode(*args, **kwargs)

    def watched_encode(*args, **kwargs):
        encodes.append(pipe.vae.encoder.conv_in.weight.dtype)
        return encode(*args, **kwargs)

    pipe.decode_latents, pipe._encode_vae_image, pipe.vae.to = watched_decode, watched_encode, watched_cast
    outputs = [frames(pipe, point) for _ in range(calls)]
    return decodes, encodes, casts, outputs


@pytest.mark.slow
def test_compile_vae_keeps_the_decoder_weights_where_cuda_graphs_recorded_them(point, monkeypatch, fresh_dynamo):
    """reduce-overhead records CUDA graphs over the decoder's weights by address. An fp16 VAE with
    force_upcast is cast to fp32 for the encode and back in every call: new weight tensors every video,
    so the graphs would be recorded again per video. The compile-vae lever keeps the encoder in fp32
    once instead: the decoder's weights stay put and the output is the reference's. The fp16 pipeline
    on the CPU, the lever applied past its CUDA-only decision with Dynamo's eager backend."""
    from svdops.bench import models

    monkeypatch.setattr(models, "COMPILE_BACKEND", "eager")
    half = dataclasses.replace(point, dtype="fp16", steps=1)
    reference_pipe, _ = build_random_pipeline(half, "cpu")
    assert reference_pipe.vae.config.force_upcast
    decodes, encodes, casts, (reference, _) = _decoder_weights_per_call(reference_pipe, half)
    assert encodes == [torch.float32, torch.float32] and [d for _, d in decodes] == [torch.float16] * 2
    # the mechanism: every video casts the whole VAE up and back, so the decoder's weights are new tensors
    assert casts.count(torch.float32) == 2 and casts.count(torch.float16) >= 2

    pipe, _ = build_random_pipeline(half, "cpu")
    note = CompileVAEDecoder("reduce-overhead", requested=True).apply(pipe)
    decodes, encodes, casts, (first, second) = _decoder_weights_per_call(pipe, half)
    assert encodes == [torch.float32, torch.float32] and [d for _, d in decodes] == [torch.float16] * 2
    assert casts == [] and decodes[0][0] == decodes[1][0]  # the same tensors every call: graphs recorded once
    assert np.array_equal(first, reference) and np.array_equal(second, reference)
    assert "encoder kept in fp32" in note
