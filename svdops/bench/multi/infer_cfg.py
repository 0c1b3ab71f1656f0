"""`infer-cfg`: two GPUs share one video, one half of the classifier-free guidance batch each.

The pipeline stacks [unconditional, conditional] into one UNet batch each step. Here each rank
of a pair runs its half through the UNet and the pair all-gathers the two noise predictions, so
both ranks hold the full prediction and step the scheduler identically (same seed, same noise):
the step costs one half-batch UNet call plus one small exchange. Rank 0 of a pair decodes and is
the one timed end to end; its partner stops at the latents.

Rank 0 first makes the videos alone with the unsplit UNet (the one-GPU latency baseline) and
keeps one video's latents; the pair then makes the same video and the difference is recorded, so
every run shows the split changes nothing but the speed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from svdops.bench.config import PointConfig
from svdops.bench.multi.rank import RankContext
from svdops.bench.multi.video import VideoRunner
from svdops.errors import BadInputError

UNCOND, COND = 0, 1  # order of the halves in the pipeline's guidance batch
# Same seed, same weights: the split can differ from the whole batch only by the kernels chosen for
# another batch size, and those rounding differences compound over the steps. Relative to the
# latents' largest magnitude: fp32 (TF32 convolutions on a GPU) and the half types.
TOLERANCE = {"fp32": 1e-3, "bf16": 5e-2, "fp16": 2e-2}


@contextmanager
def split_guidance(unet: Any, group: Any, member: int, dist: Any, torch: Any) -> Iterator[None]:
    """While active, `unet(...)` runs only this rank's half of the batch and returns the whole.

    The forward is replaced on the instance (not the module wrapped), so the pipeline still sees
    the UNet's own config, dtype and device.
    """
    original = unet.forward

    def forward(
        sample: Any, timestep: Any, encoder_hidden_states: Any, added_time_ids: Any, return_dict: bool = True
    ) -> Any:
        batch = sample.shape[0]
        if batch % 2:
            raise RuntimeError(f"infer-cfg needs the guidance batch (even), got a UNet batch of {batch}")

        def half(tensor: Any) -> Any:
            if torch.is_tensor(tensor) and tensor.ndim and tensor.shape[0] == batch:
                return tensor.chunk(2)[member]
            return tensor

        out = original(
            half(sample),
            half(timestep),
            encoder_hidden_states=half(encoder_hidden_states),
            added_time_ids=half(added_time_ids),
            return_dict=False,
        )[0].contiguous()
        halves = [torch.empty_like(out) for _ in range(2)]
        dist.all_gather(halves, out, group=group)
        noise = torch.cat(halves)
        if return_dict:
            from diffusers.models.unets.unet_spatio_temporal_condition import UNetSpatioTemporalConditionOutput

            return UNetSpatioTemporalConditionOutput(sample=noise)
        return (noise,)

    unet.forward = forward
    try:
        yield
    finally:
        del unet.forward  # the class's forward shows through again


def run(ctx: RankContext, point: PointConfig) -> None:
    if ctx.world_size % 2:
        raise BadInputError(
            f"infer-cfg pairs GPUs, and {ctx.world_size} rank(s) cannot be paired",
            where="--workload infer-cfg",
            hint="use an even number of GPUs (--gpus 0,1 or --nproc-per-node 2)",
        )
    if not point.guidance:
        raise BadInputError(
            "infer-cfg splits the guidance batch, and this scenario has guidance off (max_guidance_scale <= 1)",
            where="--workload infer-cfg",
            hint="use --workload infer-dp for a scenario without classifier-free guidance",
        )
    dist, torch = ctx.dist, ctx.torch
    pairs = ctx.world_size // 2
    # Every rank creates every group, in the same order: new_group is itself a collective.
    groups = [dist.new_group([2 * p, 2 * p + 1]) for p in range(pairs)]
    pair, member = divmod(ctx.rank, 2)
    role = "uncond+decode" if member == UNCOND else "cond"
    ctx.set_result(pair=pair, role=role, pairs=pairs, videos_per_call=point.videos_per_call)
    output = "pil" if member == UNCOND else "latent"
    runner = VideoRunner(ctx, point)
    unet = runner.pipe.unet

    with split_guidance(unet, groups[pair], member, dist, torch):
        for w in range(point.warmup):
            runner.timed("warmup", w, seed=point.seed, warmup=True, output_type=output)
    ctx.barrier("every pair warmed up")
    reference = None
    if ctx.rank == 0:
        for w in range(point.warmup):
            runner.timed("solo-warmup", w, seed=point.seed, warmup=True)
        for i in range(point.iterations):
            runner.timed("solo", i, seed=point.seed + i)
        runner.activity = "reference latents"
        reference = runner.call(seed=point.seed, steps=point.steps, output_type="latent")
    ctx.barrier("rank 0's one-GPU baseline")

    with split_guidance(unet, groups[pair], member, dist, torch):
        for i in range(point.iterations):
            runner.timed("parallel", i, seed=point.seed + pair * point.iterations + i, output_type=output)
        if pair == 0:
            runner.activity = "split latents for the check"
            split = runner.call(seed=point.seed, steps=point.steps, output_type="latent")
            if reference is not None:
                ctx.set_result(check=_compare(torch, reference, split, point.dtype))
    ctx.barrier("the other pairs' videos")


def _compare(torch: Any, reference: Any, split: Any, dtype: str) -> dict[str, Any]:
    ref, got = reference.float(), split.float()
    diff = float((ref - got).abs().max())
    scale = max(float(ref.abs().max()), 1.0)
    return {
        "what": "final latents, same seed: unsplit on rank 0 alone vs split across ranks 0 and 1",
        "max_abs_diff": diff,
        "max_abs_reference": float(ref.abs().max()),
        "relative_diff": diff / scale,
        "tolerance": TOLERANCE[dtype],
        "matches": bool(torch.isfinite(got).all()) and diff / scale <= TOLERANCE[dtype],
    }
