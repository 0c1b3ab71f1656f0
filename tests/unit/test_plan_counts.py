"""Stage counts on the meta device, the shipped table of them, and the GPU table's plan fields."""

from __future__ import annotations

import pytest

from svdops.judge import knowledge as kb
from svdops.plan.costmodel import shipped_counts, stage_calls, stage_count, workload_for_scenario

REQUIRED_GPUS = ("RTX 3090", "RTX 4090", "RTX 5090", "L4", "L40S", "A10", "A100 PCIe 40GB", "A100 PCIe 80GB",
                 "A100 SXM 40GB", "A100 SXM 80GB", "H100 PCIe", "H100 SXM", "H200", "B200", "V100 SXM2 32GB")


def test_shipped_unet_count_is_the_anchor_159_9_tflop_and_scales_with_frames():
    # Counted the same way on the H100 that measured the anchors: 159.9 TFLOP per SVD-XT UNet call.
    xt = stage_count("svd-xt", "unet", (2, 25, 72, 128))
    svd = stage_count("svd-xt", "unet", (2, 14, 72, 128))
    assert xt.flops / 1e12 == pytest.approx(159.9, rel=1e-3)
    assert 14 / 25 < svd.flops / xt.flops < 0.6  # temporal attention grows faster than linearly
    # forward chunking changes the memory, never the arithmetic
    chunked = stage_count("svd-xt", "unet-ffchunk", (2, 25, 72, 128))
    assert chunked.flops == xt.flops and chunked.activation_peak_elements < 0.7 * xt.activation_peak_elements


def test_every_stage_of_the_shipped_scenarios_is_shipped():
    keys = set(shipped_counts())
    from svdops.plan.counting import count_key

    for scenario in ("svd-xt-25f", "svd-14f", "low-vram"):
        w = workload_for_scenario(scenario)
        for chunk in (8, 4, 2, 1):
            for call in stage_calls(w.replace(decode_chunk=chunk)):
                assert count_key(w.model, call.key_stage, call.shape) in keys, (scenario, call)
    decode8 = stage_count("svd-xt", "decode", (8, 72, 128))
    decode1 = stage_count("svd-xt", "decode", (1, 72, 128))
    assert decode8.flops == 8 * decode1.flops  # decode FLOPs are linear in the chunk
    assert stage_count("svd-xt", "clip", (1, 224, 224)).params == pytest.approx(632e6, rel=0.01)  # ViT-H/14


def test_shipped_counts_match_a_fresh_count():
    from svdops.plan.counting import count_key, count_stage

    shipped = shipped_counts()
    for stage, shape in (("unet", (2, 25, 72, 128)), ("decode", (8, 72, 128)), ("decode", (1, 72, 128)),
                         ("encode", (1, 576, 1024)), ("clip", (1, 224, 224))):
        assert count_stage("svd-xt", stage, shape) == shipped[count_key("svd-xt", stage, shape)], stage


def test_tiny_model_is_counted_live_and_cached():
    from svdops.plan.counting import count_stage

    first = stage_count("tiny", "unet", (2, 4, 32, 32))
    assert first.flops > 0 and first is count_stage("tiny", "unet", (2, 4, 32, 32))


def test_the_gpu_table_has_every_plan_field_sourced():
    names = {s.name for s in kb.gpu_specs()}
    assert set(REQUIRED_GPUS) <= names
    for spec in kb.gpu_specs():
        assert spec.power_w and spec.pcie_gen and spec.price_usd_per_hour is not None, spec.name
        for fieldname in ("fp8_tflops", "power_w", "pcie_gen", "nvlink_gbps", "price_usd_per_hour"):
            assert spec.field_sources.get(fieldname, "").strip(), (spec.name, fieldname)
    assert kb.gpu_spec("L40S").fp8_tflops == 733 and kb.gpu_spec("A100 SXM 80GB").fp8_tflops is None
    assert kb.gpu_spec("B200").power_w == 1000 and kb.gpu_spec("H100 SXM").power_w == 700


def test_op_classes_and_broadcast_inputs_at_storage_size():
    torch = pytest.importorskip("torch")
    from svdops.plan.counting import _read_elements

    bias = torch.empty(320, device="meta")
    assert _read_elements(bias.expand(50, 9216, 320)) == 320  # a broadcast bias reads its storage once
    assert _read_elements(torch.empty(4, 5, device="meta")) == 20
    unet = stage_count("svd-xt", "unet", (2, 25, 72, 128))
    classes = {cls for _, _, cls in unet.ops}
    assert classes == {"mm", "attn", "mem"}
    assert all(f == 0 for f, _, cls in unet.ops if cls == "mem")
