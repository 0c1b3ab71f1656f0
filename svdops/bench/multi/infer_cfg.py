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

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
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


@dataclass
class SplitCalls:
    """What the split saw: one entry per UNet call, so a run can prove the split ran every step."""

    batches: list[int] = field(default_factory=list)  # the guidance batch the pipeline passed in
    halves: list[int] = field(default_factory=list)  # the batch this rank's UNet forward ran

    @property
    def calls(self) -> int:
        return len(self.halves)


@contextmanager
def split_guidance(unet: Any, group: Any, member: int, dist: Any, torch: Any) -> Iterator[SplitCalls]:
    """While active, `unet(...)` runs only this rank's half of the batch and returns the whole.

    The split lives in the module's own forward pre-hook and forward hook, not in `unet.forward`:
    with model CPU offload, diffusers re-applies `enable_model_cpu_offload` after every pipeline
    call, and accelerate's hook removal and re-install rewrite `unet.forward` (it would drop a
    replaced forward from the second call on, and deleting ours on exit would drop accelerate's).
    Neither touches the module's hook dicts, and removing our handles touches nothing else. The
    pipeline still sees the UNet's own config, dtype and device.
    """
    seen = SplitCalls()

    def halve(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        sample = args[0] if args else kwargs["sample"]
        batch = sample.shape[0]
        if batch % 2:
            raise RuntimeError(f"infer-cfg needs the guidance batch (even), got a UNet batch of {batch}")

        def half(tensor: Any) -> Any:
            if torch.is_tensor(tensor) and tensor.ndim and tensor.shape[0] == batch:
                return tensor.chunk(2)[member]
            return tensor

        seen.batches.append(batch)
        seen.halves.append(batch // 2)
        return tuple(half(a) for a in args), {k: half(v) for k, v in kwargs.items()}

    def gather(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> Any:
        as_tuple = isinstance(output, tuple)
        out = (output[0] if as_tuple else output.sample).contiguous()
        halves = [torch.empty_like(out) for _ in range(2)]
        dist.all_gather(halves, out, group=group)
        noise = torch.cat(halves)
        if as_tuple:
            return (noise, *output[1:])
        output.sample = noise
        return output

    handles = [
        unet.register_forward_pre_hook(halve, with_kwargs=True),
        unet.register_forward_hook(gather, with_kwargs=True),
    ]
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()


def verify_every_step(seen: SplitCalls) -> Callable[[int], None]:
    """A check for VideoRunner.verify: the split ran at every UNet step of the call just made.

    Raised before the call's row is recorded: a rank that ran the whole batch alone (the split
    gone) would otherwise time duplicated work and report it as a speed-up.
    """
    last = seen.calls

    def verify(steps: int) -> None:
        nonlocal last
        ran, last = seen.calls - last, seen.calls
        if ran != steps:
            raise RuntimeError(
                f"the guidance split ran at {ran} of {steps} UNet step(s) of this call: the rank ran the whole "
                "batch without its partner, so the call is not timed"
            )

    return verify


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

    with split_guidance(unet, groups[pair], member, dist, torch) as seen:
        runner.verify = verify_every_step(seen)
        for w in range(point.warmup):
            runner.timed("warmup", w, seed=point.seed, warmup=True, output_type=output)
    runner.verify = None
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

    with split_guidance(unet, groups[pair], member, dist, torch) as seen:
        runner.verify = verify_every_step(seen)
        for i in range(point.iterations):
            runner.timed("parallel", i, seed=point.seed + pair * point.iterations + i, output_type=output)
        if pair == 0:
            runner.activity = "split latents for the check"
            split = runner.call(seed=point.seed, steps=point.steps, output_type="latent")
            if reference is not None:
                ctx.set_result(check=_compare(torch, reference, split, point.dtype))
    runner.verify = None
    ctx.set_result(split_unet_calls=seen.calls, split_unet_batch=sorted(set(seen.halves)))
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
