"""What to run: scenarios from data, the user's overrides, sweeps. Pure: no torch here.

A `BenchRequest` is what the user asked for; `resolve_points()` turns it into one `PointConfig`
per configuration to measure (one, or the cross product of the `--sweep` axes).
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import math
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from svdops.errors import BadInputError
from svdops.scenarios import SCENARIOS_FILE, scenario_values, scenarios_document

DEFAULT_SCENARIO = "svd-xt-25f"
DTYPES = ("fp16", "bf16", "fp32")
# Options that --sweep may vary; all are integers, and none needs the pipeline rebuilt.
SWEEP_KEYS = ("decode_chunk", "frames", "height", "width", "steps", "videos_per_call")
# --optimize levels and torch.compile modes (svdops.bench.optimize holds what each level does).
OPTIMIZE_LEVELS = ("none", "safe", "max")
COMPILE_MODES = ("default", "max-autotune", "reduce-overhead")
# StableVideoDiffusionPipeline.check_inputs refuses any height or width that is not a multiple of 8.
PIPELINE_PIXEL_MULTIPLE = 8
_SWEEP_ALIASES = {"decode_chunk_size": "decode_chunk", "num_frames": "frames", "videos": "videos_per_call"}


@dataclass(frozen=True)
class Settings:
    """What a scenario sets and every configuration point carries."""

    model: str
    unet_num_frames: int
    frames: int
    height: int
    width: int
    steps: int
    warmup_steps: int
    decode_chunk: int
    videos_per_call: int
    min_guidance_scale: float
    max_guidance_scale: float
    fps: int
    motion_bucket_id: int
    noise_aug_strength: float
    cpu_offload: bool
    forward_chunking: bool
    iterations: int
    warmup: int


@dataclass(frozen=True)
class Scenario(Settings):
    name: str
    description: str
    needs_gpu: bool


@dataclass(frozen=True)
class BenchRequest:
    """The user's options. None means 'what the scenario says' (or the device's default)."""

    scenario: str = DEFAULT_SCENARIO
    device: str | None = None
    dtype: str | None = None
    decode_chunk: int | None = None
    steps: int | None = None
    frames: int | None = None
    height: int | None = None
    width: int | None = None
    videos_per_call: int | None = None
    compile: bool = False
    iterations: int | None = None
    warmup: int | None = None
    seed: int = 0
    store: str = "svdops-runs"
    weights: str | None = None
    sweep: tuple[str, ...] = ()
    telemetry: bool = True
    telemetry_hz: float = 10.0
    optimize: str = "none"
    compile_mode: str = "default"
    compile_cache: str | None = None


@dataclass(frozen=True)
class PointConfig(Settings):
    """One fully resolved configuration: everything that decides what is measured."""

    scenario: str
    device: str
    dtype: str
    compile: bool
    seed: int
    sweep: dict[str, int] = field(default_factory=dict)  # the axes' values at this point
    optimize: str = "none"
    compile_mode: str = "default"

    @property
    def guidance(self) -> bool:
        return self.max_guidance_scale > 1.0

    @property
    def unet_batch(self) -> int:
        """Batch the UNet sees per step: classifier-free guidance doubles it."""
        return self.videos_per_call * (2 if self.guidance else 1)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def size_key(self) -> tuple[int, ...]:
        """Orders configurations by how much they ask of the card (for 'largest that fits')."""
        return (self.videos_per_call * self.frames * self.height * self.width, self.decode_chunk, self.steps)


# --- scenarios ---------------------------------------------------------------------------------


def load_scenario(name: str) -> Scenario:
    """A scenario's bench settings from the one registry (its `memory:` block is the knowledge base's)."""
    values = scenario_values(name)
    values.pop("memory", None)
    values.setdefault("description", "")
    names = {f.name for f in dataclasses.fields(Scenario)} - {"name"}
    missing = names - values.keys()
    unknown = values.keys() - names
    where = f"svdops/data/{SCENARIOS_FILE}: scenarios.{name}"
    if missing or unknown:
        raise BadInputError(f"missing keys {sorted(missing)}, unknown keys {sorted(unknown)}", where=where)
    return Scenario(name=name, **{k: values[k] for k in names})


def model_configs(model: str) -> dict[str, dict[str, Any]]:
    """Component configs (unet, vae, image_encoder, scheduler, feature_extractor) for a model name.

    A model with `base:` starts from that model's configs and replaces the keys it names, so the
    tiny model keeps the released scheduler and feature extractor.
    """
    models = scenarios_document().get("models", {})
    where = f"svdops/data/{SCENARIOS_FILE}: models.{model}"
    if model not in models:
        raise BadInputError(f"unknown model {model!r}", where=where)
    entry = models[model] or {}
    if "configs" in entry:
        text = resources.files("svdops").joinpath("data", entry["configs"]).read_text(encoding="utf-8")
        raw = json.loads(text)
        configs = {
            name: {k: v for k, v in component.items() if not k.startswith("_")}
            for name, component in raw.items()
            if isinstance(component, dict)
        }
    elif "base" in entry:
        configs = copy.deepcopy(model_configs(entry["base"]))
    else:
        raise BadInputError("a model needs `configs:` (a JSON file) or `base:` (another model)", where=where)
    for component in ("unet", "vae", "image_encoder", "scheduler", "feature_extractor"):
        configs.setdefault(component, {}).update(copy.deepcopy(entry.get(component, {})))
    return configs


def pixel_multiple(model: str) -> int:
    """What height and width must be a multiple of for `model`: the pipeline's 8, and the VAE's
    scale factor (the latents are height // scale, and the encoded image must match them). The
    UNet takes any latent size (it forwards skip sizes to its upsamplers), so it adds nothing."""
    vae_scale = 2 ** (len(model_configs(model)["vae"]["block_out_channels"]) - 1)
    return math.lcm(PIPELINE_PIXEL_MULTIPLE, vae_scale)


def check_pixels(flag: str, value: int, multiple: int) -> None:
    if value % multiple:
        lower = max(multiple, value // multiple * multiple)
        raise BadInputError(
            f"{flag} {value} is not a multiple of {multiple} (the pipeline and this model's VAE need it)",
            where=flag,
            hint=f"use a multiple of {multiple}, e.g. {lower} or {lower + multiple}",
        )


def check_request_shape(request: BenchRequest) -> None:
    """The request's height and width (the scenario's where not given) against the model's multiple.

    Swept values are checked per point (a failed point, and the sweep goes on); the base ones here,
    before minutes are spent building a pipeline, or starting ranks, that would refuse them."""
    scenario = load_scenario(request.scenario)
    multiple = pixel_multiple(scenario.model)
    for key in ("height", "width"):
        value = getattr(request, key)
        check_pixels(f"--{key}", getattr(scenario, key) if value is None else value, multiple)


# --- resolving ---------------------------------------------------------------------------------


def parse_sweep(items: tuple[str, ...] | list[str]) -> dict[str, list[int]]:
    """`('decode_chunk=1,2,4', 'frames=14,25')` -> {'decode_chunk': [1, 2, 4], 'frames': [14, 25]}."""
    axes: dict[str, list[int]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = _SWEEP_ALIASES.get(key.strip(), key.strip()).replace("-", "_")
        if not sep or key not in SWEEP_KEYS:
            raise BadInputError(
                f"cannot sweep {item!r}",
                where="--sweep",
                hint=f"use KEY=V1,V2,... with KEY one of {', '.join(SWEEP_KEYS)}, e.g. --sweep decode_chunk=1,2,4,8",
            )
        if key in axes:
            raise BadInputError(f"{key} is swept twice", where="--sweep", hint="give each key once")
        try:
            parsed = [int(v) for v in values.split(",") if v.strip()]
        except ValueError as exc:
            raise BadInputError(f"{item!r}: values must be whole numbers", where="--sweep") from exc
        if not parsed or any(v <= 0 for v in parsed):
            raise BadInputError(f"{item!r}: give one or more values above 0", where="--sweep")
        axes[key] = list(dict.fromkeys(parsed))
    return axes


def resolve_points(request: BenchRequest, device: str) -> list[PointConfig]:
    """The request as configurations to measure, in sweep order (the last axis varies fastest)."""
    scenario = load_scenario(request.scenario)
    dtype = request.dtype or ("fp32" if device == "cpu" else "fp16")
    if dtype not in DTYPES:
        raise BadInputError(f"unknown dtype {dtype!r}", where="--dtype", hint=f"choose one of {', '.join(DTYPES)}")
    iterations = scenario.iterations if request.iterations is None else request.iterations
    warmup = scenario.warmup if request.warmup is None else request.warmup
    if iterations < 1:
        raise BadInputError("--iterations must be at least 1", where="--iterations")
    if warmup < 0:
        raise BadInputError("--warmup cannot be negative", where="--warmup")
    if request.optimize not in OPTIMIZE_LEVELS:
        raise BadInputError(f"unknown --optimize {request.optimize!r}", where="--optimize",
                            hint=f"choose one of {', '.join(OPTIMIZE_LEVELS)}")  # fmt: skip
    if request.compile_mode not in COMPILE_MODES:
        raise BadInputError(f"unknown --compile-mode {request.compile_mode!r}", where="--compile-mode",
                            hint=f"choose one of {', '.join(COMPILE_MODES)}")  # fmt: skip
    if request.compile or request.optimize != "none":
        warmup = max(warmup, 1)  # the first call compiles (or autotunes); it must never land in the timed set

    settings = {f.name: getattr(scenario, f.name) for f in dataclasses.fields(Settings)}
    settings.update(iterations=iterations, warmup=warmup)
    for key in ("frames", "height", "width", "steps", "decode_chunk", "videos_per_call"):
        value = getattr(request, key)
        if value is not None:
            flag = "--" + key.replace("_", "-")
            if value < 1:
                raise BadInputError(f"{flag} must be at least 1, got {value}", where=flag)
            settings[key] = value
    check_request_shape(request)
    base = PointConfig(
        **settings, scenario=scenario.name, device=device, dtype=dtype, compile=request.compile, seed=request.seed,
        optimize=request.optimize, compile_mode=request.compile_mode,
    )  # fmt: skip
    axes = parse_sweep(request.sweep)
    if not axes:
        return [base]
    points = []
    for values in itertools.product(*axes.values()):
        chosen = dict(zip(axes, values, strict=True))
        # Any: the sweep axes are PointConfig's integer fields by name (parse_sweep checks them).
        overrides: dict[str, Any] = {**chosen, "sweep": chosen}
        points.append(dataclasses.replace(base, **overrides))
    return points


def largest_fitting(points: list[tuple[PointConfig, str]]) -> PointConfig | None:
    """The biggest configuration (by `size_key`) whose status is 'ok'."""
    fitting = [p for p, status in points if status == "ok"]
    return max(fitting, key=lambda p: p.size_key) if fitting else None
