"""Per-stage work of the SVD pipeline, counted on the meta device: FLOPs, bytes moved, live memory.

Each stage's network is rebuilt from its config under `torch.device("meta")` and called once at the
scenario's shapes, so a count needs no GPU, no weights and no memory, and takes about a second for
the SVD-XT UNet. Three things are tallied per aten op while it runs:

- FLOPs, from `torch.utils.flop_counter.FlopCounterMode` (the same formulas the bench's MFU uses);
- elements read and written (inputs plus new outputs): the traffic of one kernel per aten op, which
  is what eager PyTorch runs. Views move nothing and count nothing; a broadcast input (a bias
  expanded over a batch) is counted at the size of its storage, which is what the kernel reads from
  memory (the rest comes from cache), not at the size it is viewed as;
- the op class of each op: `mm` (matmul and convolution: tensor-core work), `attn` (the fused
  attention kernel) and `mem` (everything without FLOPs: norms, activations, adds, copies). Each
  class gets its own achieved efficiency in calibrate.py.
- live activation elements: every op's new output storage is tracked until Python drops it, and
  the high-water mark is the stage's activation peak. Weights exist before the count and are
  accounted separately from the parameter count.

What is fused, and why. Counting follows the kernels eager PyTorch really launches:

- attention: on meta, `scaled_dot_product_attention` would fall back to the math path and
  materialise frames x frames and tokens x tokens score matrices that no GPU kernel keeps. It is
  intercepted and counted as one fused kernel (the flash / memory-efficient kernels SDPA dispatches
  to on a GPU): the SDPA FLOP formula, Q, K, V read once and O written once, and only the output as
  a new allocation;
- linear + bias (`addmm`) and convolution + bias are one aten op, so one kernel (the bias rides in
  the GEMM epilogue): counted once already;
- group norm, SiLU, GELU, the GEGLU multiply, residual adds and the `/ output_scale_factor` divide
  stay separate: eager PyTorch launches one kernel for each (diffusers calls `F.group_norm` then
  `F.silu`; nothing fuses them without torch.compile). Counting them fused would predict eager
  runs faster than they are; the compiled UNet's lower traffic is what its separately calibrated
  efficiency (calibrate.py) absorbs.

Ops are folded by arithmetic intensity (FLOPs per element), which is all a roofline needs: two ops
of the same intensity are on the same side of every GPU's ridge point. Only this module imports
torch; everything it returns is plain data.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from typing import Any

from svdops.bench.config import model_configs
from svdops.bench.models import import_stack


@dataclass(frozen=True)
class StageCount:
    """One call of one network at one shape."""

    flops: int
    # (flops, elements, class) folded by class and intensity; a roofline evaluates
    # sum(max(f / peak, e * bytes / bandwidth)) per class (class: mm | attn | mem, see OP_CLASSES)
    ops: tuple[tuple[int, int, str], ...]
    activation_peak_elements: int  # high-water mark of tensors created during the call
    params: int  # parameters of the network the call runs

    def to_json(self) -> dict[str, Any]:
        return {
            "flops": self.flops,
            "ops": [list(op) for op in self.ops],
            "activation_peak_elements": self.activation_peak_elements,
            "params": self.params,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StageCount:
        return cls(
            int(data["flops"]),
            tuple(_op(op) for op in data["ops"]),
            int(data["activation_peak_elements"]),
            int(data["params"]),
        )

    @property
    def elements_moved(self) -> int:
        return sum(e for _, e, _ in self.ops)


OP_CLASSES = ("mm", "attn", "mem")


def _op(raw: Any) -> tuple[int, int, str]:
    """One folded op from JSON; a two-field row (an older table) is classed by whether it has FLOPs."""
    f, e = int(raw[0]), int(raw[1])
    cls = str(raw[2]) if len(raw) > 2 else ("mm" if f else "mem")
    if cls not in OP_CLASSES:
        raise ValueError(f"unknown op class {cls!r}")
    return f, e, cls


def model_digest(model: str) -> str:
    """Twelve hex digits naming a model's component configs: shipped counts are keyed on it, so a
    changed config can never be priced with stale counts."""
    configs = model_configs(model)
    wanted = {k: configs[k] for k in ("unet", "vae", "image_encoder")}
    text = json.dumps(wanted, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def count_key(model: str, stage: str, shape: tuple[int, ...]) -> str:
    """`<digest>:unet:2x25x72x128`: the key of one count in the shipped table and the cache."""
    return f"{model_digest(model)}:{stage}:{'x'.join(str(n) for n in shape)}"


# Stages and the shape tuple each one is keyed on:
#   unet           (batch, frames, latent_h, latent_w)          one denoising call
#   unet-ffchunk   the same, with unet.enable_forward_chunking() (same FLOPs, smaller peak)
#   decode         (frames_in_chunk, latent_h, latent_w)        one vae.decode call
#   encode         (batch, height, width)                      vae.encode of the conditioning image
#   clip           (batch, image_size, image_size)              the CLIP image encoder
STAGES = ("unet", "unet-ffchunk", "decode", "encode", "clip")


def count_stage(model: str, stage: str, shape: tuple[int, ...]) -> StageCount:
    """Count one stage call at a shape (cached per process: the shipped scenarios never get here)."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}")
    return _count(model, stage, tuple(int(n) for n in shape))


@cache
def _count(model: str, stage: str, shape: tuple[int, ...]) -> StageCount:
    torch, diffusers, transformers = import_stack()
    configs = model_configs(model)
    meta = torch.device("meta")
    with meta:
        if stage.startswith("unet"):
            net = diffusers.UNetSpatioTemporalConditionModel(**configs["unet"])
        elif stage in ("decode", "encode"):
            net = diffusers.AutoencoderKLTemporalDecoder(**configs["vae"])
        else:
            encoder = {k: v for k, v in configs["image_encoder"].items() if k != "architectures"}
            net = transformers.CLIPVisionModelWithProjection(transformers.CLIPVisionConfig(**encoder))
    # Parameters made with the legacy torch.Tensor([...]) constructor ignore the device context.
    net = net.to(meta).eval()
    params = sum(p.numel() for p in net.parameters())

    def call() -> None:
        if stage.startswith("unet"):
            batch, frames, lh, lw = shape
            unet_cfg = configs["unet"]
            if stage == "unet-ffchunk":
                net.enable_forward_chunking()
            sample = torch.empty(batch, frames, unet_cfg["in_channels"], lh, lw, device=meta)
            context = torch.empty(batch, 1, unet_cfg["cross_attention_dim"], device=meta)
            added = torch.empty(batch, 3, device=meta)
            # A float timestep: a tensor one would be built on the CPU and meet meta tensors.
            net(sample, 1.0, encoder_hidden_states=context, added_time_ids=added, return_dict=False)
        elif stage == "decode":
            frames, lh, lw = shape
            latents = torch.empty(frames, configs["vae"]["latent_channels"], lh, lw, device=meta)
            net.decode(latents, num_frames=frames)
        elif stage == "encode":
            batch, height, width = shape
            net.encode(torch.empty(batch, configs["vae"]["in_channels"], height, width, device=meta))
        else:
            batch, size, _ = shape
            net(torch.empty(batch, 3, size, size, device=meta))

    return _tally(torch, call, params)


def _tally(torch: Any, call: Any, params: int) -> StageCount:
    import torch.nn.functional as functional
    from torch import overrides
    from torch.utils import _python_dispatch, flop_counter
    from torch.utils._pytree import tree_flatten

    # torch's mode classes and FLOP formulas are untyped; held as Any so strict mypy stays quiet here only
    dispatch_mode: Any = _python_dispatch.TorchDispatchMode
    function_mode: Any = overrides.TorchFunctionMode
    sdpa_flop_count: Any = flop_counter.sdpa_flop_count
    FlopCounterMode: Any = flop_counter.FlopCounterMode

    flops_by_intensity: dict[tuple[str, float], list[int]] = defaultdict(lambda: [0, 0])
    live = {"now": 0, "peak": 0}
    refs: dict[int, list[int]] = {}  # storage id -> [elements, live tensors on it]

    def record(flops: int, elements: int, cls: str) -> None:
        # Rounded to 4 significant digits: ops this close sit on the same side of any ridge point.
        key = (cls, 0.0 if elements == 0 else float(f"{flops / elements:.4g}"))
        slot = flops_by_intensity[key]
        slot[0] += flops
        slot[1] += elements

    def release(key: int) -> None:
        entry = refs.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            live["now"] -= entry[0]
            del refs[key]

    def track(tensor: Any, inputs: set[int]) -> None:
        storage = tensor.untyped_storage()
        key = storage._cdata
        if key in refs:
            refs[key][1] += 1
        elif key in inputs:
            return  # a view of a weight or of an input made before the count: nothing new
        else:
            refs[key] = [storage.nbytes() // tensor.element_size(), 1]
            live["now"] += refs[key][0]
            live["peak"] = max(live["peak"], live["now"])
        weakref.finalize(tensor, release, key)

    counter = FlopCounterMode(display=False)

    def counted() -> int:
        return int(sum(counter.flop_counts["Global"].values()))

    class Tally(dispatch_mode):  # type: ignore[misc]
        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            kwargs = kwargs or {}
            before = counted()
            out = func(*args, **kwargs)
            flops = counted() - before
            ins = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
            outs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
            in_keys = {t.untyped_storage()._cdata for t in ins}
            new_outs = [t for t in outs if t.untyped_storage()._cdata not in in_keys]
            cls = "mm" if flops else "mem"
            if func._overloadpacket.__name__ not in _NO_TRAFFIC and (ins or outs):
                record(flops, sum(_read_elements(t) for t in ins) + sum(t.numel() for t in new_outs), cls)
            elif flops:
                record(flops, 0, cls)
            for t in outs:
                track(t, in_keys)
            return out

    class FusedAttention(function_mode):  # type: ignore[misc]
        def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            kwargs = kwargs or {}
            if func is functional.scaled_dot_product_attention:
                q, k, v = args[:3]
                out = torch.empty(*q.shape[:-1], v.shape[-1], device=q.device, dtype=q.dtype)
                record(int(sdpa_flop_count(q.shape, k.shape, v.shape)),
                       q.numel() + k.numel() + v.numel() + out.numel(), "attn")
                return out
            return func(*args, **kwargs)

    tally = Tally()
    with counter, tally, FusedAttention(), torch.no_grad():
        call()
    ops = tuple(sorted((f, e, cls) for (cls, _), (f, e) in flops_by_intensity.items()))
    return StageCount(sum(f for f, _, _ in ops), ops, live["peak"], params)


def _read_elements(tensor: Any) -> int:
    """Elements a kernel reads of an input: a broadcast view (stride 0) reads its storage, not its shape."""
    numel = int(tensor.numel())
    if 0 in tensor.stride():
        return min(numel, int(tensor.untyped_storage().nbytes()) // max(1, int(tensor.element_size())))
    return numel


# Ops that only reinterpret a tensor's metadata (or allocate without writing): no memory traffic.
_NO_TRAFFIC = frozenset({
    "view", "_unsafe_view", "expand", "split", "split_with_sizes", "as_strided", "permute", "transpose",
    "slice", "select", "unsqueeze", "squeeze", "t", "alias", "detach", "unbind", "chunk", "_reshape_alias",
    "reshape", "flatten", "unflatten", "empty", "empty_like", "empty_strided", "lift_fresh",
})
