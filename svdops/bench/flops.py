"""UNet FLOPs per denoising step, counted once per shape on the meta device (no GPU, ~1 s).

The UNet is rebuilt from its config on `meta`, so counting never touches the real weights, works
for a compiled or offloaded pipeline alike, and costs no memory.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from svdops.bench.models import import_stack


def _freeze(config: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in config.items()))


def unet_flops(unet_config: dict[str, Any], *, batch: int, frames: int, latent_height: int, latent_width: int) -> int:
    """FLOPs of one UNet call on latents (batch, frames, in_channels, latent_height, latent_width)."""
    clean = {k: v for k, v in unet_config.items() if not k.startswith("_")}
    return _count(_freeze(clean), batch, frames, latent_height, latent_width)


@cache
def _count(frozen: tuple[tuple[str, Any], ...], batch: int, frames: int, height: int, width: int) -> int:
    torch, diffusers, _ = import_stack()
    from torch.utils.flop_counter import FlopCounterMode

    config = {k: list(v) if isinstance(v, tuple) else v for k, v in frozen}
    with torch.device("meta"):
        unet = diffusers.UNetSpatioTemporalConditionModel(**config)
    # Parameters made with the legacy torch.Tensor([...]) constructor ignore the device context.
    unet = unet.to("meta")
    sample = torch.empty(batch, frames, config["in_channels"], height, width, device="meta")
    context = torch.empty(batch, 1, config["cross_attention_dim"], device="meta")
    added_time_ids = torch.empty(batch, 3, device="meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        # A float timestep: a tensor one would be built on the CPU and meet meta tensors.
        unet(sample, 1.0, encoder_hidden_states=context, added_time_ids=added_time_ids, return_dict=False)
    return int(counter.get_total_flops())
