"""The levers `--optimize` can pull, each a small object that decides for itself where it applies.

A lever says whether it applies to a (device, dtype, GPU architecture) and why not when it does
not, and `apply(pipe)` changes the pipeline in place and returns a note for the result. Levels:
`safe` levers keep the output equal to the reference within fp16 tolerance (tested on the CPU);
`max` levers trade precision for speed and stand behind the quality gate; `declined` entries are
levers measured or reasoned out, kept so every result says why they are not used.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

from svdops.bench.optimize.attention import CUDA_GRID_LIMIT, ChunkedSDPAProcessor, batch_per_chunk, install

LEVELS = ("none", "safe", "max")
COMPILE_MODES = ("default", "max-autotune", "reduce-overhead")
Arch = tuple[int, int] | None  # CUDA compute capability, None on the CPU

# VAE decode memory per frame at 576x1024 fp16: peak allocated rises 3.0 GiB from decode_chunk_size 2
# to 8 on the H100 anchors (12.05 -> 15.06 GiB), about 0.5 GiB per frame, scaling with the pixels.
DECODE_GIB_PER_FRAME_576x1024 = 0.5
DECODE_MEMORY_SHARE = 0.6  # of the memory free before the run: the UNet's activations are gone by then


@dataclass(frozen=True)
class Decision:
    applies: bool
    reason: str


YES = Decision(True, "")


def _cuda_only(device: str, what: str) -> Decision | None:
    if device.startswith("cuda"):
        return None
    return Decision(False, f"CUDA only: {what}")


class Lever:
    name = ""
    level = "safe"
    summary = ""

    def applies_to(self, device: str, dtype: str, arch: Arch) -> Decision:
        return YES

    def apply(self, pipe: Any) -> str:
        raise NotImplementedError


class ChunkedAttention(Lever):
    name = "sdpa-chunked"
    summary = "temporal attention split into batches the flash/cuDNN SDPA kernels accept"

    def __init__(self, max_batch_heads: int = CUDA_GRID_LIMIT, backends: list[Any] | None = None) -> None:
        self.max_batch_heads = max_batch_heads
        self.backends = backends

    def applies_to(self, device: str, dtype: str, arch: Arch) -> Decision:
        no = _cuda_only(device, "the flash and cuDNN attention kernels it makes room for run only on NVIDIA GPUs")
        if no:
            return no
        if dtype == "fp32":
            return Decision(False, "flash and cuDNN attention take fp16/bf16 only; fp32 attention gains nothing")
        if arch is not None and arch < (8, 0):
            return Decision(False, f"flash attention in PyTorch needs sm80 or newer, this GPU is sm{arch[0]}{arch[1]}")
        return YES

    def apply(self, pipe: Any) -> str:
        backends = self.backends
        if backends is None:
            from torch.nn.attention import SDPBackend

            # Flash first (the fastest for 25-frame sequences of 64-wide heads), cuDNN, then the
            # memory-efficient kernel, which the anchors measured slower when forced for everything.
            backends = [SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                        SDPBackend.MATH]  # fmt: skip
        processor = ChunkedSDPAProcessor(self.max_batch_heads, backends)
        count = install(pipe.unet, processor, only_temporal=True)
        heads = sorted({m.heads for m in pipe.unet.modules() if getattr(m, "processor", None) is processor})
        chunks = ", ".join(f"{h} heads: {batch_per_chunk(h, self.max_batch_heads)}" for h in heads)
        order = " > ".join(b.name.lower() for b in backends)
        return f"{count} temporal attention modules; batch per SDPA call ({chunks}); kernel priority {order}"


class FusedProjections(Lever):
    name = "fused-qkv"
    summary = "one matmul for Q, K and V (K and V in cross-attention) instead of three"

    def apply(self, pipe: Any) -> str:
        # Module by module: the UNet's own fuse_qkv_projections() (diffusers 0.42) fuses only the
        # newer attention classes, and this UNet's Attention modules are the older kind.
        fused = [m for m in pipe.unet.modules() if hasattr(m, "fuse_projections") and hasattr(m, "to_q")]
        for module in fused:
            module.fuse_projections()
        # diffusers' AttnProcessor2_0 ignores fused weights: give unfused-processor modules ours,
        # unsplit (modules the chunked lever already set up keep their processor, which fuses too).
        processor = ChunkedSDPAProcessor(max_batch_heads=None)
        for module in fused:
            if not isinstance(module.processor, ChunkedSDPAProcessor):
                module.set_processor(processor)
        cross = sum(1 for m in fused if m.is_cross_attention)
        return f"{len(fused) - cross} self-attention modules use one QKV matmul, {cross} cross-attention one KV matmul"


class CompileUNet(Lever):
    name = "compile-unet"
    summary = "torch.compile of the UNet (Inductor), compile cache kept between runs"

    def __init__(self, mode: str = "default", requested: bool = False, offload: bool = False) -> None:
        self.mode = mode
        self.requested = requested  # --compile given: the user wants it even where --optimize would not
        self.offload = offload

    def applies_to(self, device: str, dtype: str, arch: Arch) -> Decision:
        if self.offload:
            return Decision(False, "model CPU offload moves the weights every call; compile would fight its hooks")
        if not device.startswith("cuda"):
            if self.mode == "reduce-overhead":
                return Decision(False, "CUDA only: reduce-overhead records CUDA graphs")
            if self.mode == "max-autotune":
                return Decision(False, "CUDA only: max-autotune benchmarks Triton GPU kernels")
            if not self.requested:
                return Decision(False, "not on the CPU unless --compile is given: Inductor's C++ build takes "
                                "minutes there and says nothing about a GPU")  # fmt: skip
        return YES

    def apply(self, pipe: Any) -> str:
        from svdops.bench.models import compile_module

        pipe.unet = compile_module(pipe.unet, self.mode)
        return f"torch.compile(unet, mode={self.mode}); the first (warm-up) call compiles"


class CompileVAEDecoder(CompileUNet):
    name = "compile-vae"
    summary = "torch.compile of the VAE decoder"

    def apply(self, pipe: Any) -> str:
        from svdops.bench.models import compile_module

        split = split_vae_upcast(pipe)
        # The decoder, not the VAE: the pipeline inspects vae.forward's signature to pass num_frames.
        pipe.vae.decoder = compile_module(pipe.vae.decoder, self.mode)
        note = f"torch.compile(vae.decoder, mode={self.mode}); a shorter last decode chunk compiles once more"
        return f"{note}; {split}" if split else note


def split_vae_upcast(pipe: Any) -> str | None:
    """An fp16 VAE with `force_upcast`: encoder in fp32 once, decoder left in fp16, no per-call casts.

    The reference pipeline moves the whole VAE to fp32 for the encode and back to fp16 before the
    decode, in every call: the decoder's weights are new tensors each video, and CUDA graphs
    (reduce-overhead), which hold weights by address, are recorded again for every video. Keeping
    the encoder (and quant_conv) in fp32 does what the upcast is for, once: `vae.dtype` (its first
    parameter, the encoder's) reads fp32, so the pipeline neither upcasts nor casts back, the encode
    runs in fp32 and the decode in fp16 as before. None when the VAE needs no upcast.
    """
    import torch

    vae = pipe.vae
    if vae.dtype != torch.float16 or not getattr(vae.config, "force_upcast", False):
        return None
    vae.encoder.to(torch.float32)
    vae.quant_conv.to(torch.float32)
    if vae.dtype != torch.float32:  # a VAE whose first parameter is not the encoder's: undo, say so
        vae.to(torch.float16)
        raise RuntimeError("the VAE's dtype does not follow its encoder; cannot keep the encode in fp32 once")
    return "VAE encoder kept in fp32 once (force_upcast) so the decoder's fp16 weights stay in place"


class Fp8Linear(Lever):
    name = "fp8-linear"
    level = "max"
    summary = "UNet linear layers in fp8 (torchao dynamic activation + weight quantization)"

    def applies_to(self, device: str, dtype: str, arch: Arch) -> Decision:
        no = _cuda_only(device, "fp8 tensor cores exist on Ada (sm89), Hopper (sm90) and newer")
        if no:
            return no
        if arch is not None and arch < (8, 9):
            return Decision(False, f"fp8 tensor cores need sm89 or newer, this GPU is sm{arch[0]}{arch[1]}")
        if dtype == "fp32":
            return Decision(False, "fp8 paths start from fp16/bf16 activations; run with --dtype fp16 or bf16")
        if importlib.util.find_spec("torchao") is None:
            return Decision(False, "torchao is not installed: pip install 'svdops[optimize]'")
        return YES

    def apply(self, pipe: Any) -> str:
        import torch
        from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow, PerTensor, quantize_

        unet = getattr(pipe.unet, "_orig_mod", pipe.unet)
        # Row-wise scales keep more precision but torchao's row-wise kernels take bf16 only.
        bf16 = next(unet.parameters()).dtype == torch.bfloat16
        granularity = PerRow() if bf16 else PerTensor()
        chosen: list[str] = []

        def eligible(module: Any, name: str) -> bool:
            # Embedding MLPs see a handful of rows per call: quantizing them costs more than it saves.
            ok = (isinstance(module, torch.nn.Linear) and "emb" not in name
                  and module.in_features % 16 == 0 and module.out_features % 16 == 0)  # fmt: skip
            if ok:
                chosen.append(name)
            return ok

        quantize_(unet, Float8DynamicActivationFloat8WeightConfig(granularity=granularity), filter_fn=eligible)
        return f"{len(chosen)} linear layers in float8 e4m3 ({type(granularity).__name__} scales); embeddings kept"


class WideDecode(Lever):
    name = "vae-decode-chunk"
    level = "max"
    summary = "decode as many frames at once as free GPU memory allows"

    def __init__(self, height: int, width: int) -> None:
        self.height = height
        self.width = width

    def applies_to(self, device: str, dtype: str, arch: Arch) -> Decision:
        # A max lever, not safe: the temporal decoder mixes frames within a chunk, so the chunk size
        # changes the output (slightly) as well as the speed.
        return _cuda_only(device, "the chunk is sized from free GPU memory") or YES

    def frames_that_fit(self, free_bytes: int) -> int:
        per_frame = DECODE_GIB_PER_FRAME_576x1024 * 2**30 * (self.height * self.width) / (576 * 1024)
        return max(1, int(free_bytes * DECODE_MEMORY_SHARE // per_frame))

    def apply(self, pipe: Any) -> str:
        import torch

        free, _ = torch.cuda.mem_get_info(pipe.device)
        fit = self.frames_that_fit(free)
        original = pipe.decode_latents

        def decode_latents(latents: Any, num_frames: int, decode_chunk_size: int = 14) -> Any:
            return original(latents, num_frames, max(decode_chunk_size, min(fit, latents.shape[0] * latents.shape[1])))

        pipe.decode_latents = decode_latents
        per_frame = DECODE_GIB_PER_FRAME_576x1024
        return f"decode chunk up to {fit} frames ({free / 2**30:.1f} GiB free, ~{per_frame} GiB per 576x1024 frame)"


class Declined(Lever):
    """A lever tried and set aside; it never applies, and says why."""

    level = "declined"

    def __init__(self, name: str, summary: str, why: str) -> None:
        self.name = name
        self.summary = summary
        self.why = why

    def applies_to(self, device: str, dtype: str, arch: Arch) -> Decision:
        return Decision(False, self.why)


DECLINED = (
    Declined("channels-last", "UNet weights in channels_last memory format",
             "fails: the UNet has 5-D temporal convolution weights (measured on H100, anchors)"),
    Declined("sdpa-mem-efficient", "SDPA forced to the memory-efficient kernel everywhere",
             "slower: 0.820 s/step against 0.667 with PyTorch's own dispatch (H100, anchors)"),
    Declined("bf16", "bfloat16 instead of float16", "same speed: 0.657 s/step against 0.667 (H100, anchors); "
             "choose it with --dtype bf16"),
    Declined("conditioning-outside-loop", "CLIP image encoder and VAE encode moved out of the timed call",
             "the pipeline does not allow it: StableVideoDiffusionPipeline.__call__ takes the image, not image "
             "embeddings or image latents, so both encoders run in every call (and cost about 1% of it)"),
    Declined("cuda-graphs", "CUDA graphs (torch.compile mode reduce-overhead)",
             "not by default: it saves kernel-launch time, well under 1% of a 0.5 s step, and holds a second copy "
             "of the activations; choose it with --compile-mode reduce-overhead"),
)  # fmt: skip


def levers_for(level: str, *, compile_mode: str, compile_requested: bool, offload: bool, height: int,
               width: int) -> list[Lever]:  # fmt: skip
    """Every lever the level considers, in the order they are applied (compile last, so it sees the rest)."""
    if level == "none":
        return []
    chosen: list[Lever] = [ChunkedAttention(), FusedProjections()]
    if level == "max":
        chosen += [Fp8Linear(), WideDecode(height, width)]
    chosen += [
        CompileVAEDecoder(compile_mode, compile_requested, offload),
        CompileUNet(compile_mode, compile_requested, offload),
    ]
    return chosen + list(DECLINED)
