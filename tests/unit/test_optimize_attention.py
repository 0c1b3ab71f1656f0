"""The chunked SDPA processor against diffusers' own, on the CPU with the math kernel: same numbers."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from torch.nn.attention import SDPBackend

from svdops.bench.optimize.attention import ChunkedSDPAProcessor

MATH = [SDPBackend.MATH]


def attention(cross: bool) -> Attention:
    torch.manual_seed(0)
    return Attention(query_dim=32, heads=4, dim_head=8, cross_attention_dim=16 if cross else None).eval()


@pytest.mark.parametrize("cross", [False, True], ids=["self", "cross"])
def test_splitting_the_batch_gives_the_unsplit_result(cross):
    attn = attention(cross)
    x = torch.randn(37, 6, 32)  # 37 sequences of 6 tokens: a temporal block in miniature
    context = torch.randn(37, 1, 16) if cross else None
    with torch.no_grad():
        reference = AttnProcessor2_0()(attn, x, encoder_hidden_states=context)
        processor = ChunkedSDPAProcessor(max_batch_heads=4 * 5, backends=MATH)  # 5 sequences per call: 8 calls
        chunked = processor(attn, x, encoder_hidden_states=context)
    assert processor.calls_split == 1
    torch.testing.assert_close(chunked, reference, rtol=0, atol=1e-6)


def test_a_batch_within_the_limit_is_one_call():
    attn = attention(False)
    processor = ChunkedSDPAProcessor(backends=MATH)
    with torch.no_grad():
        processor(attn, torch.randn(8, 6, 32))
    assert processor.calls_split == 0


@pytest.mark.parametrize("cross", [False, True], ids=["self", "cross"])
def test_fused_projections_match_separate_ones(cross):
    attn = attention(cross)
    x = torch.randn(5, 6, 32)
    context = torch.randn(5, 3, 16) if cross else None
    with torch.no_grad():
        reference = AttnProcessor2_0()(attn, x, encoder_hidden_states=context)
        attn.fuse_projections()
        assert attn.fused_projections
        fused = ChunkedSDPAProcessor(max_batch_heads=8, backends=MATH)(attn, x, encoder_hidden_states=context)
    torch.testing.assert_close(fused, reference, rtol=1e-5, atol=1e-6)


def test_a_mask_is_split_with_its_batch():
    attn = attention(False)
    x = torch.randn(6, 5, 32)
    mask = torch.ones(6, 5, dtype=torch.bool)
    mask[:, -2:] = False  # the last two tokens are padding
    with torch.no_grad():
        reference = AttnProcessor2_0()(attn, x, attention_mask=mask)
        chunked = ChunkedSDPAProcessor(max_batch_heads=8, backends=MATH)(attn, x, attention_mask=mask)
    torch.testing.assert_close(chunked, reference, rtol=0, atol=1e-6)
