"""The CFG split's bookkeeping, in one process: which half a rank runs and how the halves come back.

The partner GPU is stood in for by a gather that runs the other half through the same UNet: the
real two-process exchange over gloo is in tests/integration/test_multi_bench.py.
"""

from __future__ import annotations

import pytest
import torch

from svdops.bench.config import model_configs
from svdops.bench.models import build_unet
from svdops.bench.multi.infer_cfg import COND, UNCOND, split_guidance


class PartnerInProcess:
    """A `dist` whose all_gather fills the partner's slot by running the partner's half itself."""

    def __init__(self, unet, inputs, member):
        self.unet, self.inputs, self.member = unet, inputs, member
        self.calls = 0

    def all_gather(self, halves, mine, group=None):
        self.calls += 1
        other = 1 - self.member
        sample, timestep, hidden, time_ids = (t.chunk(2)[other] for t in self.inputs)
        halves[self.member].copy_(mine)
        partner = type(self.unet).forward(self.unet, sample, timestep, hidden, time_ids, return_dict=False)[0]
        halves[other].copy_(partner)


@pytest.fixture(scope="module")
def unet_and_inputs():
    torch.manual_seed(0)
    unet = build_unet(model_configs("tiny"), num_frames=4).eval()
    cfg = unet.config
    batch, frames = 2, 4  # the guidance batch: [unconditional, conditional]
    inputs = (
        torch.randn(batch, frames, cfg.in_channels, 8, 8),
        torch.tensor([0.5, 0.5]),
        torch.randn(batch, 1, cfg.cross_attention_dim),
        torch.tensor([[6.0, 127.0, 0.02]] * batch),
    )
    return unet, inputs


@pytest.mark.parametrize("member", [UNCOND, COND])
@pytest.mark.parametrize("return_dict", [False, True])
def test_split_call_returns_the_whole_batchs_prediction(unet_and_inputs, member, return_dict):
    unet, inputs = unet_and_inputs
    with torch.no_grad():
        whole = unet(*inputs[:2], encoder_hidden_states=inputs[2], added_time_ids=inputs[3], return_dict=False)[0]
        dist = PartnerInProcess(unet, inputs, member)
        with split_guidance(unet, group=None, member=member, dist=dist, torch=torch):
            out = unet(*inputs[:2], encoder_hidden_states=inputs[2], added_time_ids=inputs[3], return_dict=return_dict)
        split = out.sample if return_dict else out[0]
    assert dist.calls == 1
    assert split.shape == whole.shape
    torch.testing.assert_close(split, whole, atol=1e-5, rtol=1e-5)
    assert "forward" not in unet.__dict__  # the class's forward is back


def test_an_odd_unet_batch_is_refused(unet_and_inputs):
    unet, inputs = unet_and_inputs
    odd = tuple(t[:1] for t in inputs)
    with split_guidance(unet, group=None, member=0, dist=None, torch=torch), pytest.raises(RuntimeError, match="even"):
        unet(*odd[:2], encoder_hidden_states=odd[2], added_time_ids=odd[3], return_dict=False)


class EchoPartner:
    """A `dist` for one process: the partner's half is this rank's own (the counts are what is tested)."""

    def __init__(self):
        self.gathers: list[int] = []

    def all_gather(self, halves, mine, group=None):
        self.gathers.append(mine.shape[0])
        for slot in halves:
            slot.copy_(mine)


def test_the_split_survives_model_cpu_offload_across_calls_and_leaves_its_hook(monkeypatch):
    """diffusers re-applies enable_model_cpu_offload after every call, and accelerate rewrites
    unet.forward each time: a split that lived in unet.forward ran only the first call. Real
    diffusers, real accelerate (offloading to the CPU itself: the hooks are the same)."""
    import accelerate.hooks

    from svdops.bench.config import BenchRequest, resolve_points
    from svdops.bench.invoke import conditioning_image, pipeline_call
    from svdops.bench.models import build_random_pipeline

    (point,) = resolve_points(BenchRequest(scenario="tiny", device="cpu", steps=2, frames=4), "cpu")
    pipe, _ = build_random_pipeline(point, "cpu")
    pipe.enable_model_cpu_offload(device="cpu")
    unet = pipe.unet
    ran: list[int] = []  # the batch the UNet's own layers ran (frames are folded into it)
    unet.conv_in.register_forward_pre_hook(lambda module, args: ran.append(args[0].shape[0] // point.frames))
    offloads = []
    real_pre_forward = accelerate.hooks.CpuOffload.pre_forward

    def counted(self, module, *args, **kwargs):
        offloads.append(type(module).__name__)
        return real_pre_forward(self, module, *args, **kwargs)

    monkeypatch.setattr(accelerate.hooks.CpuOffload, "pre_forward", counted)
    image = conditioning_image(point)

    def call():
        return pipeline_call(pipe, image, point, steps=2, generator=torch.Generator().manual_seed(0),
                             output_type="latent").frames  # fmt: skip

    dist = EchoPartner()
    with torch.no_grad(), split_guidance(unet, group=None, member=COND, dist=dist, torch=torch) as seen:
        call()
        call()  # after the first call's re-applied offload
    assert seen.calls == 4 and seen.batches == [2] * 4 and seen.halves == [1] * 4
    assert ran == [1] * 4, "the UNet ran the whole guidance batch: the split was lost"
    assert dist.gathers == [1] * 4  # every step exchanged its half
    # On leaving, accelerate's offload forward is still the UNet's, and it still moves the weights.
    assert hasattr(unet, "_hf_hook") and "forward" in unet.__dict__
    offloads.clear()
    ran.clear()
    with torch.no_grad():
        call()
    assert ran == [2, 2] and offloads.count("UNetSpatioTemporalConditionModel") == 2


def test_a_call_the_split_missed_is_refused_before_it_is_timed():
    from svdops.bench.multi.infer_cfg import SplitCalls, verify_every_step

    seen = SplitCalls()
    verify = verify_every_step(seen)
    seen.halves += [1, 1]
    verify(2)  # both steps split
    seen.halves += [1]
    with pytest.raises(RuntimeError, match="1 of 2 UNet step"):
        verify(2)
