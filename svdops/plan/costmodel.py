"""From counted work to seconds and GiB on a given device, before any calibration.

A `Workload` is one configuration of the pipeline (model, shapes, steps, decode chunk, offload);
`stage_calls()` lists the network calls one video makes. A `Device` is a row of the GPU table seen
through what the model needs (dense tensor peak, bandwidth, memory, power, price).

Time of one call = sum over its ops of max(FLOPs / sustained peak, bytes / bandwidth): a per-op
roofline, kept apart by op class (matmul/conv, attention, memory-bound; see counting.py). The
sustained peak is the datasheet peak times the clock the card holds under its power cap on this
workload (clocks.py): a power-bound card is predicted as one, and faster HBM only speeds up the
memory-bound class. That floor is no prediction yet: each class's achieved efficiency
(calibrate.py) turns it into one. Per-op rather than per-stage because SVD mixes compute-bound
convolutions and attention with bandwidth-bound norms and elementwise ops, and their balance moves
with each card's FLOP:byte ratio (an L4 has 400 FLOP per byte, an A100 150).

Memory = resident weights + the calibrated multiple of the counted activation peak of the stage
that peaks highest.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from svdops.bench.config import PointConfig, load_scenario, model_configs
from svdops.errors import BadInputError, MissingDependencyError
from svdops.judge import knowledge as kb
from svdops.plan.clocks import Clocks, sustained
from svdops.plan.counting import OP_CLASSES, StageCount, count_key

ANCHORS_FILE = "plan_anchors.json"
GIB = 2**30
DTYPE_BYTES = {"fp16": 2, "bf16": 2, "fp32": 4}
# The CUDA context and the kernels' modules take memory no allocator statistic shows (about
# 0.5 GiB with torch 2.x on Hopper; more with cuDNN and cuBLAS workspaces loaded).
CUDA_CONTEXT_GIB = 0.6
# PCIe x16 bandwidth per direction by generation (GB/s, the PCI-SIG figures).
PCIE_GBPS = {3: 15.75, 4: 31.5, 5: 63.0, 6: 121.0}


BOOST_ASSUMED = Clocks(1.0, False, None, None, "boost clock assumed")


@dataclass(frozen=True)
class Device:
    """What the cost model needs to know about one accelerator."""

    name: str
    arch: str
    peak_tflops: Mapping[str, float]  # dtype -> dense tensor (or vector) peak
    bandwidth_gbps: float
    memory_gb: float
    power_w: float | None
    price_usd_per_hour: float | None
    pcie_gen: int | None
    is_gpu: bool = True
    source: str = ""
    clocks: Clocks = BOOST_ASSUMED

    def sustained_peak(self, dtype: str) -> float:
        """TFLOP/s at the clock the card holds on this workload (the datasheet peak x the clock fraction)."""
        return self.peak(dtype) * self.clocks.fraction

    def peak(self, dtype: str) -> float:
        value = self.peak_tflops.get(dtype)
        if value is None:
            raise BadInputError(
                f"no {dtype} peak for {self.name} in the GPU table",
                where="svdops/judge/knowledge/gpus.yaml",
                hint="plan fp16 or bf16 (Volta has no bf16 tensor cores)",
            )
        return value

    @property
    def usable_gib(self) -> float:
        # Marketed "80 GB" on an H100 is 81,559 MiB (79.6 GiB) in nvidia-smi; "24 GB" cards report
        # 24,564 MiB. The marketed number read as GiB is within 1% of what PyTorch can allocate.
        return self.memory_gb * 0.99 - CUDA_CONTEXT_GIB


def device_from_spec(spec: kb.GpuSpec, price: float | None = None) -> Device:
    peaks = {"fp16": spec.fp16_tflops}
    if spec.bf16_tflops is not None:
        peaks["bf16"] = spec.bf16_tflops
    return Device(
        name=spec.name,
        arch=spec.arch,
        peak_tflops=peaks,
        bandwidth_gbps=spec.memory_bandwidth_gbps,
        memory_gb=spec.memory_gb,
        power_w=spec.power_w,
        price_usd_per_hour=spec.price_usd_per_hour if price is None else price,
        pcie_gen=spec.pcie_gen,
        source=spec.source,
        clocks=sustained(spec.name, spec.fp16_tflops, spec.power_w),
    )


# The CPU has no row in the GPU table: these nominal figures only let the tiny CPU runs exercise
# calibration and validation. Efficiency calibrated on the CPU absorbs them; nothing transfers.
CPU_DEVICE = Device(
    name="cpu",
    arch="CPU (code path only)",
    peak_tflops={"fp32": 1.0, "bf16": 1.0, "fp16": 1.0},
    bandwidth_gbps=50.0,
    memory_gb=0.0,
    power_w=None,
    price_usd_per_hour=None,
    pcie_gen=None,
    is_gpu=False,
    source="nominal placeholder: 1 TFLOP/s, 50 GB/s (no CPU table; efficiency absorbs it)",
)


def device_named(name: str | None) -> Device | None:
    """The Device of an nvidia-smi or table name ('cpu' and None for the CPU); None if unknown."""
    if name is None or name.lower() == "cpu":
        return CPU_DEVICE
    spec = kb.find_gpu_spec(name)
    return None if spec is None else device_from_spec(spec)


@dataclass(frozen=True)
class Workload:
    """One pipeline configuration: everything that decides the work and the memory of a video."""

    model: str
    frames: int
    height: int
    width: int
    steps: int
    decode_chunk: int
    videos_per_call: int = 1
    guidance: bool = True
    cpu_offload: bool = False
    forward_chunking: bool = False
    dtype: str = "fp16"
    compile: bool = False

    @property
    def unet_batch(self) -> int:
        return self.videos_per_call * (2 if self.guidance else 1)

    @property
    def latent_hw(self) -> tuple[int, int]:
        # The VAE downsamples by 2 per block after the first: 8 for SVD, 2 for the tiny model.
        blocks = len(model_configs(self.model)["vae"]["block_out_channels"])
        factor = 2 ** (blocks - 1)
        return self.height // factor, self.width // factor

    def label(self) -> str:
        parts = [f"{self.frames}f {self.height}x{self.width} {self.steps} steps chunk {self.decode_chunk} {self.dtype}"]
        if self.compile:
            parts.append("compile")
        if self.forward_chunking:
            parts.append("ff-chunk")
        if self.cpu_offload:
            parts.append("offload")
        return " ".join(parts)

    def replace(self, **changes: Any) -> Workload:
        return dataclasses.replace(self, **changes)


def workload_from_point(config: Mapping[str, Any]) -> Workload:
    """The workload of a bench point (results.json `points[].config` or a PointConfig dict)."""
    return Workload(
        model=str(config["model"]),
        frames=int(config["frames"]),
        height=int(config["height"]),
        width=int(config["width"]),
        steps=int(config["steps"]),
        decode_chunk=int(config["decode_chunk"]),
        videos_per_call=int(config.get("videos_per_call", 1)),
        guidance=float(config.get("max_guidance_scale", 3.0)) > 1.0 if "guidance" not in config
        else bool(config["guidance"]),
        cpu_offload=bool(config.get("cpu_offload", False)),
        forward_chunking=bool(config.get("forward_chunking", False)),
        dtype=str(config.get("dtype", "fp16")),
        compile=bool(config.get("compile", False)),
    )


def workload_for_scenario(name: str, *, dtype: str = "fp16", compile: bool = False,
                          decode_chunk: int | None = None) -> Workload:
    scenario = load_scenario(name)
    if scenario.needs_gpu is False and dtype != "fp32":
        dtype = "fp32"  # what the bench runs a CPU scenario in
    settings = {f.name: getattr(scenario, f.name) for f in dataclasses.fields(PointConfig) if hasattr(scenario, f.name)}
    settings.update(dtype=dtype, compile=compile)
    if decode_chunk is not None:
        settings["decode_chunk"] = decode_chunk
    return workload_from_point(settings)


# --- counts ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StageCall:
    stage: str  # unet | decode | encode | clip
    key_stage: str  # the counted variant (unet-ffchunk for forward chunking)
    shape: tuple[int, ...]
    calls: int  # per video


def stage_calls(workload: Workload) -> list[StageCall]:
    """The network calls one video costs. Decode works through batch x frames in chunks, the last
    one shorter; encode and CLIP run once per pipeline call (divided over its videos)."""
    lh, lw = workload.latent_hw
    unet_stage = "unet-ffchunk" if workload.forward_chunking else "unet"
    calls = [StageCall("unet", unet_stage, (workload.unet_batch, workload.frames, lh, lw), workload.steps)]
    total = workload.videos_per_call * workload.frames
    full, rest = divmod(total, workload.decode_chunk)
    if full:
        calls.append(StageCall("decode", "decode", (workload.decode_chunk, lh, lw), full))
    if rest:
        calls.append(StageCall("decode", "decode", (rest, lh, lw), 1))
    image = int(model_configs(workload.model)["image_encoder"].get("image_size", 224))
    calls.append(StageCall("encode", "encode", (workload.videos_per_call, workload.height, workload.width), 1))
    calls.append(StageCall("clip", "clip", (workload.videos_per_call, image, image), 1))
    return calls


@cache
def anchors_document() -> dict[str, Any]:
    text = resources.files("svdops").joinpath("data", ANCHORS_FILE).read_text(encoding="utf-8")
    data = json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("points"), list):
        raise BadInputError("no `points` list", where=f"svdops/data/{ANCHORS_FILE}")
    return data


def shipped_counts() -> dict[str, StageCount]:
    return {key: StageCount.from_json(value) for key, value in anchors_document().get("counts", {}).items()}


_SHIPPED: dict[str, StageCount] | None = None


def stage_count(model: str, stage: str, shape: tuple[int, ...]) -> StageCount:
    """A shipped count when the table has this shape, else a live count (torch + diffusers)."""
    global _SHIPPED
    if _SHIPPED is None:
        _SHIPPED = shipped_counts()
    key = count_key(model, stage, shape)
    found = _SHIPPED.get(key)
    if found is not None:
        return found
    from svdops.plan.counting import count_stage

    try:
        return count_stage(model, stage, shape)
    except MissingDependencyError as exc:
        raise MissingDependencyError(
            f"no shipped FLOP count for {stage} at {shape} and {exc.message}",
            hint="install the bench extra (pip install 'svdops[bench]') to count new shapes on the meta device, "
                 "or plan a shipped scenario",
        ) from exc


# --- roofline ----------------------------------------------------------------------------------


def roofline_parts(count: StageCount, device: Device, dtype: str) -> dict[str, float]:
    """Seconds of one call per op class if every op ran at the sustained peak or the bandwidth,
    whichever binds."""
    peak = device.sustained_peak(dtype) * 1e12
    bandwidth = device.bandwidth_gbps * 1e9
    elem = DTYPE_BYTES[dtype]
    parts = dict.fromkeys(OP_CLASSES, 0.0)
    for f, e, cls in count.ops:
        parts[cls] += max(f / peak, e * elem / bandwidth)
    return parts


def roofline_s(count: StageCount, device: Device, dtype: str) -> float:
    return sum(roofline_parts(count, device, dtype).values())


@dataclass(frozen=True)
class StageFloor:
    """Per-video roofline floor and FLOPs of one stage, summed over its calls, split by op class."""

    stage: str
    floor_s: float
    flops: int
    calls: tuple[StageCall, ...]
    parts: Mapping[str, float] = dataclasses.field(default_factory=dict)

    @property
    def compute_s(self) -> float:
        """Matmul/conv and attention: what the calibrated compute efficiency applies to."""
        return self.parts.get("mm", 0.0) + self.parts.get("attn", 0.0)

    @property
    def memory_s(self) -> float:
        return self.parts.get("mem", 0.0)


def stage_floors(workload: Workload, device: Device) -> dict[str, StageFloor]:
    floors: dict[str, list[Any]] = {}
    for call in stage_calls(workload):
        count = stage_count(workload.model, call.key_stage, call.shape)
        entry = floors.setdefault(call.stage, [dict.fromkeys(OP_CLASSES, 0.0), 0, []])
        for cls, seconds in roofline_parts(count, device, workload.dtype).items():
            entry[0][cls] += call.calls * seconds
        entry[1] += call.calls * count.flops
        entry[2].append(call)
    return {s: StageFloor(s, sum(v[0].values()), v[1], tuple(v[2]), dict(v[0])) for s, v in floors.items()}


def unet_step_flops(workload: Workload) -> int:
    call = stage_calls(workload)[0]
    return stage_count(workload.model, call.key_stage, call.shape).flops


# --- memory ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MemoryParts:
    """GiB of one video's peak, before calibration: weights resident and each stage's activations."""

    weights_gib: dict[str, float]  # network -> GiB
    activation_gib: dict[str, float]  # stage -> counted peak of live tensors
    resident_gib: dict[str, float]  # stage -> weights on the GPU while it runs
    io_gib: float  # latents, conditioning and decoded frames held across stages


def memory_parts(workload: Workload) -> MemoryParts:
    elem = DTYPE_BYTES[workload.dtype]
    counts = {c.stage: stage_count(workload.model, c.key_stage, c.shape) for c in stage_calls(workload)}
    decode_calls = [c for c in stage_calls(workload) if c.stage == "decode"]
    decode_peak = max(stage_count(workload.model, c.key_stage, c.shape).activation_peak_elements for c in decode_calls)
    weights = {
        "unet": counts["unet"].params * elem / GIB,
        "vae": counts["decode"].params * elem / GIB,
        "clip": counts["clip"].params * elem / GIB,
    }
    activation = {
        "unet": counts["unet"].activation_peak_elements * elem / GIB,
        "decode": decode_peak * elem / GIB,
        "encode": counts["encode"].activation_peak_elements * elem / GIB,
        "clip": counts["clip"].activation_peak_elements * elem / GIB,
    }
    everything = sum(weights.values())
    if workload.cpu_offload:
        # enable_model_cpu_offload keeps one network on the GPU at a time
        resident = {"unet": weights["unet"], "decode": weights["vae"], "encode": weights["vae"],
                    "clip": weights["clip"]}
    else:
        resident = dict.fromkeys(activation, everything)
    lh, lw = workload.latent_hw
    frames = workload.videos_per_call * workload.frames
    # latents + image latents (x2 for guidance), then the decoded frames in the dtype and as float32
    latents = workload.unet_batch * frames * 8 * lh * lw * elem
    io = (latents + frames * 3 * workload.height * workload.width * (elem + 4)) / GIB
    return MemoryParts(weights, activation, resident, io)
