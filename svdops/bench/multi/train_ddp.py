"""`train-ddp`: one fine-tuning step of the SVD UNet under DistributedDataParallel.

Synthetic latents and conditioning in the UNet's real shapes (no data loading to measure), fp32
master weights, AdamW, bf16 autocast, optional gradient checkpointing. The gradient all-reduce
is the size of the UNet (6 GB of fp32 gradients for SVD-XT) every step: this is where NVLink
and PCIe part ways. Rank 0 first trains alone without DDP for the one-GPU baseline.
"""

from __future__ import annotations

import time
from typing import Any

from svdops.bench.config import PointConfig, model_configs
from svdops.bench.models import build_unet
from svdops.bench.multi.rank import RankContext, record_row

LEARNING_RATE = 1e-5


def run(ctx: RankContext, point: PointConfig) -> None:
    torch = ctx.torch
    configs = model_configs(point.model)
    ctx.heartbeat("building the UNet")
    torch.manual_seed(point.seed)  # the same initial weights everywhere, as DDP expects
    with torch.device(point.device):
        unet = build_unet(configs, point.unet_num_frames)
    unet.to(point.device)  # a few legacy-constructed parameters ignore the device context
    unet.train()
    checkpointing = bool(ctx.spec.get("grad_checkpointing"))
    if checkpointing:
        unet.enable_gradient_checkpointing()
    batch = point.videos_per_call
    inputs, target = _synthetic_batch(torch, unet, configs, point, seed=point.seed + 1000 + ctx.rank)
    parameters = sum(p.numel() for p in unet.parameters())
    ctx.set_result(
        batch_per_rank=batch,
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


def _synthetic_batch(torch: Any, unet: Any, configs: dict[str, Any], point: PointConfig, seed: int) -> Any:
    """Noisy latents concatenated with the image latents (8 channels), CLIP embeddings, time ids.

    A different seed per rank stands in for a sharded data loader.
    """
    cfg = unet.config
    scale = 2 ** (len(configs["vae"]["block_out_channels"]) - 1)
    generator = torch.Generator(device=point.device).manual_seed(seed)

    def randn(*shape: int) -> Any:
        return torch.randn(*shape, generator=generator, device=point.device)

    batch, frames = point.videos_per_call, point.frames
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
        with torch.autocast(device_type=device_type, dtype=torch.bfloat16):
            prediction = model(**inputs, return_dict=False)[0]
        loss = torch.nn.functional.mse_loss(prediction.float(), target)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        value = float(loss.detach())  # also waits for the step's kernels
        ctx.sync()
        seconds = time.perf_counter() - start
        ctx.log.record(
            record_row(
                "warmup" if warmup else phase,
                i,
                seconds=seconds,
                items=point.videos_per_call,
                warmup=warmup,
                t_start_unix=start_unix,
                loss=value,
            )
        )
