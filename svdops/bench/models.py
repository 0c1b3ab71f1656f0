"""Building the reference pipeline: from the shipped configs with random weights, or from a snapshot.

The only place (with the rest of svdops.bench) that imports torch, diffusers and transformers.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from svdops.bench.config import PIPELINE_PIXEL_MULTIPLE, PointConfig, check_pixels, model_configs
from svdops.errors import BadInputError, MissingDependencyError
from svdops.versions import Version

RANDOM_INIT = "random-init"
# torch.compile's backend for --compile and the compile levers. Tests set "eager": Dynamo's tracing,
# guards and recompiles as they are, without Inductor's C++ build (minutes on a small CPU).
COMPILE_BACKEND = "inductor"


def compile_module(module: Any, mode: str) -> Any:
    """torch.compile(module) with a --compile-mode ("default" is torch's own default)."""
    torch, _, _ = import_stack()
    return torch.compile(module, mode=None if mode == "default" else mode, backend=COMPILE_BACKEND)


def import_stack() -> tuple[Any, Any, Any]:
    """(torch, diffusers, transformers), or a MissingDependencyError that says how to install them."""
    try:
        import diffusers
        import torch
        import transformers
    except ImportError as exc:
        raise MissingDependencyError(
            f"`svdops bench` needs torch, diffusers and transformers ({exc.name} is not installed)",
            hint="install torch for your CUDA first, then `pip install 'svdops[bench]'`",
        ) from exc
    # The SVD pipeline module imports transformers' CLIPImageProcessor, which warns without
    # torchvision although the PIL fallback it picks is what this pipeline uses anyway.
    noisy = logging.getLogger("transformers.utils.import_utils")
    level = noisy.level
    noisy.setLevel(logging.ERROR)
    try:
        _ = diffusers.StableVideoDiffusionPipeline
    finally:
        noisy.setLevel(level)
    return torch, diffusers, transformers


def torch_dtype(name: str) -> Any:
    torch, _, _ = import_stack()
    return {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[name]


@dataclass(frozen=True)
class Weights:
    """Which weights a result was measured with: recorded in every run's config and results."""

    kind: str  # "random-init" or "local"
    description: str
    path: str | None = None
    model_index_sha256: str | None = None
    variant: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "description": self.description,
            "path": self.path,
            "model_index_sha256": self.model_index_sha256,
            "variant": self.variant,
        }


@contextlib.contextmanager
def _default_dtype(dtype: Any) -> Iterator[None]:
    torch, _, _ = import_stack()
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _image_processor_class(transformers: Any) -> Any:
    # Without torchvision, transformers 5 warns on CLIPImageProcessor and falls back to the PIL
    # class anyway; ask for that class directly so the output stays clean.
    try:
        import torchvision  # noqa: F401
    except ImportError:
        pil_class = getattr(transformers, "CLIPImageProcessorPil", None)
        if pil_class is not None:
            return pil_class
    return transformers.CLIPImageProcessor


def build_unet(configs: dict[str, dict[str, Any]], num_frames: int | None = None) -> Any:
    _, diffusers, _ = import_stack()
    cfg = dict(configs["unet"])
    if num_frames is not None:
        cfg["num_frames"] = num_frames
    return diffusers.UNetSpatioTemporalConditionModel(**cfg)


def build_random_pipeline(point: PointConfig, build_device: str) -> tuple[Any, Weights]:
    """The scenario's architecture with random weights, built directly on `build_device` in the
    target dtype: initialising 2.2 B parameters in float32 on a CPU first would take minutes and
    twice the memory. Seeded, so two runs build the same weights."""
    torch, diffusers, transformers = import_stack()
    configs = model_configs(point.model)
    dtype = torch_dtype(point.dtype)
    torch.manual_seed(point.seed)
    with torch.device(build_device), _default_dtype(dtype):
        unet = build_unet(configs, point.unet_num_frames)
        vae = diffusers.AutoencoderKLTemporalDecoder(**configs["vae"])
        encoder_config = transformers.CLIPVisionConfig(**configs["image_encoder"])
        image_encoder = transformers.CLIPVisionModelWithProjection(encoder_config)
    scheduler = diffusers.EulerDiscreteScheduler.from_config(configs["scheduler"])
    feature_extractor = _image_processor_class(transformers)(**configs["feature_extractor"])
    pipe = diffusers.StableVideoDiffusionPipeline(
        vae=vae, image_encoder=image_encoder, unet=unet, scheduler=scheduler, feature_extractor=feature_extractor
    )
    # A few mixing parameters use the legacy torch.Tensor([...]) constructor, which ignores the
    # device context (not the default dtype): this moves them to where everything else already is.
    pipe.to(build_device)
    stray = {p.dtype for p in pipe.unet.parameters()} | {p.dtype for p in pipe.vae.parameters()}
    assert stray == {dtype}, f"random-init built parameters in {stray}, expected {dtype}"
    return pipe, Weights(kind=RANDOM_INIT, description=f"random-init ({point.model} architecture)")


def snapshot_weights(path: str) -> Weights:
    """Check that `path` is a local diffusers snapshot before anything heavy is loaded."""
    folder = Path(path).expanduser()
    hint = (
        "pass a local snapshot of stabilityai/stable-video-diffusion-img2vid(-xt): a folder with "
        "model_index.json, unet/, vae/, image_encoder/, scheduler/ and feature_extractor/"
    )
    if not folder.exists():
        raise BadInputError("weights folder does not exist", where=str(folder), hint=hint)
    index = folder / "model_index.json"
    if not index.is_file():
        raise BadInputError("not a diffusers snapshot (no model_index.json)", where=str(folder), hint=hint)
    digest = hashlib.sha256(index.read_bytes()).hexdigest()
    unet_dir = folder / "unet"
    variant = "fp16" if unet_dir.is_dir() and any(".fp16." in p.name for p in unet_dir.iterdir()) else None
    return Weights(
        kind="local",
        description=f"local snapshot {folder.resolve()}",
        path=str(folder.resolve()),
        model_index_sha256=digest,
        variant=variant,
    )


def load_snapshot_pipeline(weights: Weights, point: PointConfig) -> Any:
    _, diffusers, _ = import_stack()
    assert weights.path is not None
    # Belt and braces with local_files_only: nothing may reach the network during a benchmark.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # diffusers 0.42 renamed torch_dtype to dtype (the old name warns); older releases know only torch_dtype.
    dtype_key = "dtype" if Version.parse(diffusers.__version__) >= Version.parse("0.42") else "torch_dtype"
    try:
        return diffusers.StableVideoDiffusionPipeline.from_pretrained(
            weights.path,
            variant=weights.variant,
            local_files_only=True,
            **{dtype_key: torch_dtype(point.dtype)},
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BadInputError(
            f"cannot load the pipeline from this snapshot: {exc}",
            where=weights.path,
            hint="check that the snapshot is complete (all *.safetensors files present) and is an SVD pipeline",
        ) from exc


def prepare_pipeline(point: PointConfig, weights_path: str | None) -> tuple[Any, Weights]:
    """Build or load the pipeline and apply the scenario's memory options and --compile."""
    gpu = point.device != "cpu"
    if weights_path:
        weights = snapshot_weights(weights_path)
        pipe = load_snapshot_pipeline(weights, point)
        if not point.cpu_offload:
            pipe.to(point.device)
    else:
        # With offload the weights live on the CPU between calls, but initialising them on the GPU
        # is far faster than a CPU init, and 4.4 GB of fp16 fits any target card. The offload
        # below moves them to the CPU and empties the GPU's cache itself.
        pipe, weights = build_random_pipeline(point, point.device)
    if point.cpu_offload:
        if not gpu:
            raise BadInputError(
                "model CPU offload needs a GPU to offload to",
                where=f"--scenario {point.scenario}",
                hint="use --scenario tiny on a machine without a GPU",
            )
        pipe.enable_model_cpu_offload(device=point.device)
    if point.forward_chunking:
        pipe.unet.enable_forward_chunking()
    if point.compile and point.optimize == "none":
        # With --optimize the compile lever compiles, after the other levers and the gate's reference run.
        pipe.unet.compile(mode=None if point.compile_mode == "default" else point.compile_mode, backend=COMPILE_BACKEND)
    pipe.set_progress_bar_config(disable=True)
    return pipe, weights


def vae_scale_factor(pipe: Any) -> int:
    return int(pipe.vae_scale_factor)


def check_shape(pipe: Any, point: PointConfig) -> None:
    """Height and width must suit the pipeline (multiples of 8) and the VAE (its scale factor); say
    so before running. Base values are checked earlier (config.resolve_points); this catches swept ones."""
    multiple = math.lcm(PIPELINE_PIXEL_MULTIPLE, vae_scale_factor(pipe))
    check_pixels("--height", point.height, multiple)
    check_pixels("--width", point.width, multiple)
