"""Stage timing inside one pipeline call, with the device synchronised around every timed region.

The pipeline is instrumented, not copied: its own `_encode_image` (CLIP), `_encode_vae_image`
(VAE encode) and `decode_latents` (VAE decode) are wrapped on the instance, and UNet steps are
timed between `callback_on_step_end` calls (the anchors' method). Step 0 runs from the end of the
VAE encode to the first callback, so it includes the few small tensors prepared in between.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

STAGES = ("clip", "vae_encode", "unet", "decode")


@dataclass
class IterationTimes:
    stages_s: dict[str, float] = field(default_factory=dict)
    steps_s: list[float] = field(default_factory=list)
    step_end_unix: list[float] = field(default_factory=list)
    e2e_s: float | None = None
    nan_frac: float | None = None  # of the decoded frames, before post-processing clamps them
    black_frames: int | None = None
    frames_out: int | None = None


class StageClock:
    """Instruments one pipeline; `begin()` starts a fresh record before each call.

    `mark(label)` is called at every stage start and end (the telemetry sampler keeps these on
    the same clocks as its samples); `on_step(i)` after each UNet step (the progress bar).
    """

    def __init__(
        self,
        pipe: Any,
        synchronize: Callable[[], None],
        mark: Callable[[str], None] | None = None,
        on_step: Callable[[int], None] | None = None,
    ) -> None:
        self.pipe = pipe
        self.sync = synchronize
        self.mark = mark or (lambda label: None)
        self.on_step = on_step or (lambda i: None)
        self.current = IterationTimes()
        self._last_step_end = 0.0
        self._wrap("_encode_image", "clip")
        self._wrap("_encode_vae_image", "vae_encode")
        self._wrap("decode_latents", "decode", inspect_output=True)

    def begin(self) -> IterationTimes:
        self.current = IterationTimes()
        return self.current

    def _wrap(self, method: str, stage: str, inspect_output: bool = False) -> None:
        original = getattr(self.pipe, method)

        def timed(*args: Any, **kwargs: Any) -> Any:
            if stage == "decode":
                self._close_unet()
            self.sync()
            self.mark(f"{stage}:start")
            start = time.perf_counter()
            out = original(*args, **kwargs)
            self.sync()
            end = time.perf_counter()
            self.mark(f"{stage}:end")
            self.current.stages_s[stage] = self.current.stages_s.get(stage, 0.0) + (end - start)
            if stage == "vae_encode":
                self._last_step_end = end
                self.mark("unet:start")
            if inspect_output:
                # A count, not a mean over a float copy: the decoded video can be 0.2 GB on the GPU.
                bad = int(torch_count_nonfinite(out))
                self.current.nan_frac = bad / max(int(out.numel()), 1)
            return out

        setattr(self.pipe, method, timed)

    def callback(self, pipe: Any, step: int, timestep: Any, callback_kwargs: dict[str, Any]) -> dict[str, Any]:
        """Pass as `callback_on_step_end`: it must return a dict (the pipeline pops tensors from it)."""
        self.sync()
        now = time.perf_counter()
        self.current.steps_s.append(now - self._last_step_end)
        self.current.step_end_unix.append(time.time())
        self._last_step_end = now
        self.on_step(step)
        return {}

    def _close_unet(self) -> None:
        if "unet" not in self.current.stages_s and self.current.steps_s:
            self.current.stages_s["unet"] = sum(self.current.steps_s)
            self.mark("unet:end")

    def run(self, call: Callable[[], Any]) -> Any:
        """Run one pipeline call end to end under the clock; returns the pipeline's output."""
        self.sync()
        self.mark("e2e:start")
        start = time.perf_counter()
        out = call()
        self.sync()
        self.current.e2e_s = time.perf_counter() - start
        self.mark("e2e:end")
        self._close_unet()
        return out


def torch_count_nonfinite(tensor: Any) -> Any:
    import torch

    return torch.count_nonzero(~torch.isfinite(tensor)).item()


def inspect_frames(frames: Any, times: IterationTimes) -> None:
    """Count black frames in the pipeline's PIL output (a list per video of RGB frames)."""
    import numpy as np

    flat = [frame for video in frames for frame in video]
    times.black_frames = sum(1 for frame in flat if int(np.asarray(frame).max()) <= 1)
    times.frames_out = len(flat)
