"""StageClock on a stand-in pipeline whose stages take known times (torch is only used for the tensor checks)."""

from __future__ import annotations

import time

import pytest
import torch
from PIL import Image

from svdops.bench.timing import IterationTimes, StageClock, inspect_frames


class SleepyPipeline:
    """Calls its stages in the order StableVideoDiffusionPipeline.__call__ does."""

    def __init__(self, decoded):
        self.decoded = decoded

    def _encode_image(self, image):
        time.sleep(0.02)

    def _encode_vae_image(self, image):
        time.sleep(0.01)

    def decode_latents(self, latents):
        time.sleep(0.03)
        return self.decoded

    def __call__(self, steps, callback):
        self._encode_image(None)
        self._encode_vae_image(None)
        for i in range(steps):
            time.sleep(0.01 * (i + 1))
            assert callback(self, i, 999 - i, {"latents": None}) == {}
        return self.decode_latents(None)


def test_stages_and_steps_are_timed_and_marked():
    decoded = torch.tensor([1.0, float("nan"), float("inf"), 0.0])
    pipe = SleepyPipeline(decoded)
    marks, steps, syncs = [], [], []
    clock = StageClock(pipe, lambda: syncs.append(1), mark=marks.append, on_step=steps.append)
    times = clock.begin()
    clock.run(lambda: pipe(3, clock.callback))
    # Sleeps only ever overshoot (more so on a loaded machine): check from below, loosely above.
    within = lambda value, slept: slept <= value < slept + 0.5  # noqa: E731
    assert within(times.stages_s["clip"], 0.02)
    assert within(times.stages_s["vae_encode"], 0.01)
    assert all(within(t, 0.01 * (i + 1)) for i, t in enumerate(times.steps_s)) and len(times.steps_s) == 3
    assert times.stages_s["unet"] == pytest.approx(sum(times.steps_s))
    assert within(times.stages_s["decode"], 0.03)
    assert times.e2e_s >= sum(times.stages_s.values())
    assert times.nan_frac == 0.5
    assert steps == [0, 1, 2]
    assert marks == [
        "e2e:start", "clip:start", "clip:end", "vae_encode:start", "vae_encode:end", "unet:start",
        "unet:end", "decode:start", "decode:end", "e2e:end",
    ]  # fmt: skip
    assert len(syncs) >= 2 * 3 + 3 + 2  # around each stage, after each step, around the call
    fresh = clock.begin()
    assert fresh is not times and fresh.steps_s == [] and clock.current is fresh


def test_black_frames_are_counted_in_the_pil_output():
    black = Image.new("RGB", (8, 8))
    almost = Image.new("RGB", (8, 8), (1, 1, 1))
    lit = Image.new("RGB", (8, 8), (0, 40, 0))
    times = IterationTimes()
    inspect_frames([[lit, black], [almost, lit]], times)
    assert (times.black_frames, times.frames_out) == (2, 4)
