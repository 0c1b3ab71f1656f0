"""Attention for the SVD UNet with the batch split into pieces the fused SDPA kernels accept.

The temporal transformer blocks attend over frames at every latent pixel, so their batch is
(videos x guidance x latent height x latent width): 18,432 at SVD-XT's top level, times 5 heads.
The flash and memory-efficient kernels launch one CUDA block per (batch, head) along a grid axis
that stops at 65,535 (pytorch/pytorch#146704), and the dispatcher then has nothing but the math
kernel left (the anchors' "No available kernel" when flash or cuDNN is forced). Each batch element
attends only to itself, so splitting the batch and concatenating the pieces gives the same numbers
as one call; only the SDPA call is split, the projections around it still see the whole batch.
"""

from __future__ import annotations

import contextlib
from typing import Any

# The CUDA grid's y and z dimensions stop here; the kernels map batch (or batch x heads) onto them.
CUDA_GRID_LIMIT = 65_535


def batch_per_chunk(heads: int, limit: int = CUDA_GRID_LIMIT) -> int:
    """Largest batch a single SDPA call may take so that batch x heads stays within `limit`.

    batch x heads, not batch alone: some kernels put both on one grid axis, and the smaller chunk
    costs nothing measurable when the chunks are still tens of thousands of sequences."""
    return max(1, limit // max(1, heads))


class ChunkedSDPAProcessor:
    """A diffusers attention processor: AttnProcessor2_0's computation with the SDPA call split
    along the batch, and fused QKV (or KV) projections used when the module has them.

    `max_batch_heads` None means never split (the processor then only adds fused projections);
    `backends` is an SDPA priority list (torch.nn.attention.SDPBackend) tried in order, or None for
    PyTorch's own dispatch.
    """

    def __init__(self, max_batch_heads: int | None = CUDA_GRID_LIMIT, backends: list[Any] | None = None) -> None:
        self.max_batch_heads = max_batch_heads
        self.backends = backends
        self.calls_split = 0  # how many calls needed splitting: tests and notes read it

    def __call__(
        self,
        attn: Any,
        hidden_states: Any,
        encoder_hidden_states: Any = None,
        attention_mask: Any = None,
        temb: Any = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch_size, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch_size, channel, height * width).transpose(1, 2)
        batch_size, sequence_length, _ = (
            hidden_states.shape if encoder_hidden_states is None else encoder_hidden_states.shape
        )
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, sequence_length, batch_size)
            attention_mask = attention_mask.view(batch_size, attn.heads, -1, attention_mask.shape[-1])
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        query, key, value = self._project(attn, hidden_states, encoder_hidden_states)
        head_dim = key.shape[-1] // attn.heads
        query = query.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        hidden_states = self._attend(query, key, value, attention_mask, attn.heads)

        hidden_states = hidden_states.transpose(1, 2).reshape(batch_size, -1, attn.heads * head_dim)
        hidden_states = hidden_states.to(query.dtype)
        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch_size, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor

    @staticmethod
    def _project(attn: Any, hidden_states: Any, encoder_hidden_states: Any) -> tuple[Any, Any, Any]:
        import torch

        fused = getattr(attn, "fused_projections", False)
        if encoder_hidden_states is None:
            if fused:
                query, key, value = torch.chunk(attn.to_qkv(hidden_states), 3, dim=-1)
                return query, key, value
            return attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
        if attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        query = attn.to_q(hidden_states)
        if fused:
            key, value = torch.chunk(attn.to_kv(encoder_hidden_states), 2, dim=-1)
            return query, key, value
        return query, attn.to_k(encoder_hidden_states), attn.to_v(encoder_hidden_states)

    def _attend(self, query: Any, key: Any, value: Any, mask: Any, heads: int) -> Any:
        import torch
        import torch.nn.functional as F

        batch = query.shape[0]
        step = batch if self.max_batch_heads is None else batch_per_chunk(heads, self.max_batch_heads)
        with self._dispatch():
            if batch <= step:
                return F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=0.0)
            self.calls_split += 1
            pieces = [
                F.scaled_dot_product_attention(
                    query[i : i + step],
                    key[i : i + step],
                    value[i : i + step],
                    attn_mask=None if mask is None else mask[i : i + step],
                    dropout_p=0.0,
                )
                for i in range(0, batch, step)
            ]
            return torch.cat(pieces, dim=0)

    def _dispatch(self) -> Any:
        if not self.backends:
            return contextlib.nullcontext()
        from torch.nn.attention import sdpa_kernel

        return sdpa_kernel(self.backends, set_priority=True)


def temporal_attention_modules(unet: Any) -> dict[str, Any]:
    """The attention modules of the UNet's temporal transformer blocks, by name."""
    return {
        name: module
        for name, module in unet.named_modules()
        if ".temporal_transformer_blocks." in f".{name}." and hasattr(module, "set_processor")
    }


def install(unet: Any, processor: ChunkedSDPAProcessor, only_temporal: bool = False) -> int:
    """Give `processor` to the UNet's attention modules (all, or the temporal ones); returns how many."""
    if only_temporal:
        modules = temporal_attention_modules(unet)
    else:
        modules = {n: m for n, m in unet.named_modules() if hasattr(m, "set_processor") and hasattr(m, "to_q")}
    for module in modules.values():
        module.set_processor(processor)
    return len(modules)
