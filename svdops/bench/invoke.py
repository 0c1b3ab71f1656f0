"""One call of the SVD pipeline: the conditioning picture and the call's arguments, spelled out once for
the single-GPU bench, the multi-GPU ranks and the quality gate's reference alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from svdops.bench.config import PointConfig


def conditioning_image(point: PointConfig) -> Any:
    """A deterministic, structured RGB picture at the output size (no file, nothing downloaded)."""
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0 : point.height, 0 : point.width]
    rng = np.random.default_rng(point.seed)
    red = 255 * x / max(point.width - 1, 1)
    green = 255 * y / max(point.height - 1, 1)
    blue = 127 + 64 * np.sin(x / 17.0) * np.cos(y / 23.0) + rng.normal(0, 8, size=x.shape)
    pixels = np.stack([red, green, blue], axis=-1).clip(0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def pipeline_call(
    pipe: Any,
    image: Any,
    point: PointConfig,
    *,
    steps: int,
    generator: Any,
    output_type: str = "pil",
    callback: Callable[..., dict[str, Any]] | None = None,
) -> Any:
    """One call of the pipeline with the point's settings: the one place that spells them out, for
    this bench, the multi-GPU ranks and the quality gate's reference alike."""
    return pipe(
        image,
        height=point.height,
        width=point.width,
        num_frames=point.frames,
        num_inference_steps=steps,
        min_guidance_scale=point.min_guidance_scale,
        max_guidance_scale=point.max_guidance_scale,
        fps=point.fps,
        motion_bucket_id=point.motion_bucket_id,
        noise_aug_strength=point.noise_aug_strength,
        decode_chunk_size=point.decode_chunk,
        num_videos_per_prompt=point.videos_per_call,
        generator=generator,
        output_type=output_type,
        callback_on_step_end=callback,
    )
