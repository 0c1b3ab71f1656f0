"""UNet FLOPs on the meta device: the real SVD-XT shape, on a CPU, in about a second."""

from __future__ import annotations

import pytest

from svdops.bench.config import model_configs
from svdops.bench.environment import is_oom
from svdops.bench.flops import unet_flops


def test_svd_xt_unet_call_is_159_9_tflop():
    # Guidance on: batch 2 x 25 frames, latents 8 x 72 x 128 (576x1024 / 8). Anchor: 159.9 TFLOP,
    # counted the same way on an H100.
    flops = unet_flops(model_configs("svd-xt")["unet"], batch=2, frames=25, latent_height=72, latent_width=128)
    assert flops / 1e12 == pytest.approx(159.9, rel=1e-3)


def test_flops_are_linear_in_the_batch_and_cached_per_shape():
    unet = model_configs("tiny")["unet"]
    one = unet_flops(unet, batch=1, frames=4, latent_height=32, latent_width=32)
    two = unet_flops(unet, batch=2, frames=4, latent_height=32, latent_width=32)
    assert one > 0 and two == 2 * one
    assert unet_flops(dict(unet), batch=2, frames=4, latent_height=32, latent_width=32) == two


def test_out_of_memory_is_recognised_in_both_forms():
    import torch

    assert is_oom(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), torch)
    assert is_oom(RuntimeError("CUDA error: out of memory"), torch)
    assert not is_oom(RuntimeError("expected scalar type Half"), torch)
    assert not is_oom(ValueError("out of memory"), torch)


def test_mfu_peak_comes_from_the_knowledge_base():
    from svdops.bench.environment import dense_peak_tflops

    peak, source = dense_peak_tflops("NVIDIA H100 80GB HBM3", "fp16")
    assert peak == pytest.approx(989.4) and "gpus.yaml" in source
    # The anchor: 159.9 TFLOP per step at 0.664 s/step is about 24% of the H100 SXM's dense peak.
    assert 159.9 / 0.664 / peak == pytest.approx(0.243, abs=0.002)
    assert dense_peak_tflops(None, "fp16") == (None, "no GPU")
    assert dense_peak_tflops("NVIDIA H100 80GB HBM3", "fp32")[0] is None
    assert dense_peak_tflops("Imaginary GPU 9000", "fp16")[0] is None
