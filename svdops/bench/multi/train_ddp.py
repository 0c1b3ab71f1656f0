"""`train-ddp`: one fine-tuning step of the SVD UNet under DistributedDataParallel.

Synthetic latents and conditioning in the UNet's real shapes (no data loading to measure), fp32
master weights, AdamW, bf16 autocast, gradient checkpointing on by default (without it the saved
activations of one 25-frame 576x1024 sample come to about 170 GiB, counted on the meta device: no
card holds them). The gradient all-reduce is the size of the UNet (6 GB of fp32 gradients for
SVD-XT) every step: this is where NVLink and PCIe part ways. Rank 0 first trains alone without
DDP for the one-GPU baseline.

On a GPU the batch per rank is sized from the card unless --videos-per-call is given: two probe
steps (batch 1 and 2) measure the fixed and per-sample peak, and the largest batch whose
estimate fits the free memory (AdamW's state and DDP's gradient buckets added, a margin kept)
is used, the same on every rank. An out-of-memory still ends the rank with status `oom`.
"""

from __future__ import annotations

import time
from typing import Any

from svdops.bench.config import PointConfig, model_configs
from svdops.bench.models import build_unet
from svdops.bench.multi.rank import RankContext, record_row

LEARNING_RATE = 1e-5
MAX_AUTO_BATCH = 8  # a sized batch stops here: past it the step time only grows with the batch
MEMORY_MARGIN = 0.85  # of the card's usable memory: allocator fragmentation and NCCL's own buffers
ADAM_STATE_BYTES = 8  # exp_avg and exp_avg_sq, fp32, per parameter
DDP_BUCKET_BYTES = 4  # DDP's gradient buckets: another fp32 copy of the gradients


def fitting_batch(capacity_bytes: float, fixed_bytes: float, per_sample_bytes: float, cap: int = MAX_AUTO_BATCH) -> int:
    """The largest batch whose estimate (fixed + batch x per sample) fits `capacity` with the margin;
    0 when not even one sample does."""
    usable = capacity_bytes * MEMORY_MARGIN - fixed_bytes
    if usable < per_sample_bytes:
        return 0
    return max(1, min(cap, int(usable // max(per_sample_bytes, 1.0))))


def run(ctx: RankContext, point: PointConfig) -> None:
    torch = ctx.torch
    configs = model_configs(point.model)
    ctx.heartbeat("building the UNet")
    torch.manual_seed(point.seed)  # the same initial weights everywhere, as DDP expects
    with torch.device(point.device):
        unet = build_unet(configs, point.unet_num_frames)
    unet.to(point.device)  # a few legacy-constructed parameters ignore the device context
    unet.train()
    checkpointing = bool(ctx.spec.get("grad_checkpointing", True))
    if checkpointing:
        unet.enable_gradient_checkpointing()
    parameters = sum(p.numel() for p in unet.parameters())
    batch, sizing = point.videos_per_call, None
    if point.device.startswith("cuda") and ctx.spec["bench"].get("videos_per_call") is None:
        batch, sizing = _size_batch(ctx, unet, configs, point, parameters)
    inputs, target = _synthetic_batch(torch, unet, configs, point, seed=point.seed + 1000 + ctx.rank, batch=batch)
    ctx.set_result(
        batch_per_rank=batch,
        batch_sizing=sizing or {"source": "--videos-per-call or the scenario (not sized: CPU or given)"},
        parameters=parameters,
        gradient_bytes=parameters * 4,
        gradient_checkpointing=checkpointing,
        autocast="bf16",
        optimizer="AdamW",
    )

    if ctx.world_size > 1:
        ctx.barrier("every rank built its UNet")
        if ctx.rank == 0:
            optimizer = torch.optim.AdamW(unet.parameters(), lr=LEARNING_RATE)
            _steps(ctx, "solo", unet, optimizer, inputs, target, point)
            del optimizer
        ctx.barrier("rank 0's one-GPU baseline")

    from torch.nn.parallel import DistributedDataParallel

    # DDP broadcasts rank 0's weights at construction, so the solo steps leave no rank out of step.
    model = DistributedDataParallel(unet, device_ids=[ctx.local_rank] if point.device.startswith("cuda") else None)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)
    _steps(ctx, "parallel", model, optimizer, inputs, target, point)
    ctx.barrier("the other ranks' steps")


def _size_batch(
    ctx: RankContext, unet: Any, configs: dict[str, Any], point: PointConfig, parameters: int
) -> tuple[int, dict[str, Any]]:
    """Probe steps at batch 1 and 2 on this card; the batch every rank can hold (the smallest)."""
    torch = ctx.torch
    peaks: dict[int, int] = {}
    optimizer = torch.optim.AdamW(unet.parameters(), lr=LEARNING_RATE)
    for probe in (1, 2):
        ctx.heartbeat(f"sizing the batch: probe step at batch {probe}")
        inputs, target = _synthetic_batch(torch, unet, configs, point, seed=point.seed, batch=probe)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(point.device)
        try:
            _one_step(torch, unet, optimizer, inputs, target, "cuda")
        except Exception as exc:
            if probe == 1 or "out of memory" not in str(exc).lower():
                raise  # batch 1 does not fit: the rank's status is oom
            break
        finally:
            del inputs, target
        peaks[probe] = int(torch.cuda.max_memory_allocated(point.device))
    for p in unet.parameters():
        p.grad = None
    del optimizer  # every rank probed with the same inputs, and DDP broadcasts rank 0's weights anyway
    torch.cuda.empty_cache()
    free, total = torch.cuda.mem_get_info(point.device)
    weights = int(torch.cuda.memory_allocated(point.device))
    capacity = free + weights  # what this process may hold: the card's free memory plus its weights
    per_sample = peaks[2] - peaks[1] if 2 in peaks else peaks[1] - weights
    fixed = peaks[1] - per_sample + parameters * (ADAM_STATE_BYTES + DDP_BUCKET_BYTES)
    batch = fitting_batch(capacity, fixed, per_sample) or 1
    if ctx.world_size > 1:
        agreed = torch.tensor([batch], device=point.device)
        ctx.dist.all_reduce(agreed, op=ctx.dist.ReduceOp.MIN)
        batch = int(agreed.item())
    return batch, {
        "source": "sized from the card: probe steps at batch 1 and 2",
        "peak_bytes": {str(k): v for k, v in peaks.items()},
        "per_sample_bytes": per_sample,
        "fixed_bytes": fixed,
        "capacity_bytes": capacity,
        "total_bytes": int(total),
        "margin": MEMORY_MARGIN,
        "max_batch": MAX_AUTO_BATCH,
    }


def _synthetic_batch(
    torch: Any, unet: Any, configs: dict[str, Any], point: PointConfig, seed: int, batch: int | None = None
) -> Any:
    """Noisy latents concatenated with the image latents (8 channels), CLIP embeddings, time ids.

    A different seed per rank stands in for a sharded data loader.
    """
    cfg = unet.config
    scale = 2 ** (len(configs["vae"]["block_out_channels"]) - 1)
    generator = torch.Generator(device=point.device).manual_seed(seed)

    def randn(*shape: int) -> Any:
        return torch.randn(*shape, generator=generator, device=point.device)

    batch, frames = batch or point.videos_per_call, point.frames
    height, width = point.height // scale, point.width // scale
    inputs = {
        "sample": randn(batch, frames, cfg.in_channels, height, width),
        "timestep": randn(batch),
        "encoder_hidden_states": randn(batch, 1, cfg.cross_attention_dim),
        "added_time_ids": torch.tensor(
            [[point.fps - 1, point.motion_bucket_id, point.noise_aug_strength]] * batch, device=point.device
        ),
    }
    return inputs, randn(batch, frames, cfg.out_channels, height, width)


def _steps(
    ctx: RankContext, phase: str, model: Any, optimizer: Any, inputs: dict[str, Any], target: Any, point: PointConfig
) -> None:
    torch = ctx.torch
    device_type = "cuda" if point.device.startswith("cuda") else "cpu"
    total = point.warmup + point.iterations
    for i in range(total):
        warmup = i < point.warmup
        ctx.heartbeat(f"{phase} step {i}")
        ctx.sync()
        start_unix, start = time.time(), time.perf_counter()
        value = _one_step(torch, model, optimizer, inputs, target, device_type)
        ctx.sync()
        seconds = time.perf_counter() - start
        ctx.log.record(
            record_row(
                "warmup" if warmup else phase,
                i,
                seconds=seconds,
                items=int(target.shape[0]),
                warmup=warmup,
                t_start_unix=start_unix,
                loss=value,
            )
        )


def _one_step(torch: Any, model: Any, optimizer: Any, inputs: dict[str, Any], target: Any, device_type: str) -> float:
    with torch.autocast(device_type=device_type, dtype=torch.bfloat16):
        prediction = model(**inputs, return_dict=False)[0]
    loss = torch.nn.functional.mse_loss(prediction.float(), target)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())  # also waits for the step's kernels
