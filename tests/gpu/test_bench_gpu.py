"""`svdops bench` on a real GPU: the timings, memory and telemetry that a CPU cannot show.

Skipped without CUDA. `benchmarks/gpu_bench.sh` runs these after the full benchmark runs.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

if not torch.cuda.is_available():
    pytest.skip("needs an NVIDIA GPU", allow_module_level=True)

from svdops.bench.config import BenchRequest  # noqa: E402
from svdops.bench.runner import run_bench  # noqa: E402

pytestmark = [pytest.mark.gpu, pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")]


def test_tiny_on_the_gpu_with_real_nvml(tmp_path):
    outcome = run_bench(
        BenchRequest(scenario="tiny", store=str(tmp_path), iterations=3, warmup=1, telemetry_hz=50)
    )
    assert outcome.status == "ok"
    summary = outcome.points[0].summary
    assert outcome.results.device.startswith("cuda")
    assert summary.peak_allocated_gib > 0 and summary.peak_reserved_gib >= summary.peak_allocated_gib
    assert summary.output_ok
    telemetry = outcome.results.telemetry
    assert telemetry.available, telemetry.note
    assert telemetry.summary.samples > 0 and telemetry.summary.power_w_max > 0


@pytest.mark.slow
def test_svd_xt_shape_matches_the_anchor_memory_and_flops(tmp_path):
    # Two steps are enough: the FLOPs per step and the peak memory (set by the decode at chunk 8)
    # do not depend on the number of steps. Anchor: 15.06 GiB allocated on an H100, fp16, eager.
    outcome = run_bench(
        BenchRequest(scenario="svd-xt-25f", store=str(tmp_path), steps=2, iterations=1, warmup=1)
    )
    assert outcome.status == "ok", outcome.points[0].error
    summary = outcome.points[0].summary
    assert summary.unet_tflop_per_step == pytest.approx(159.9, rel=1e-3)
    assert summary.peak_allocated_gib == pytest.approx(15.06, rel=0.05)
    assert summary.output_ok, (summary.nan_frac_max, summary.black_frames)
    assert summary.mfu is None or 0.05 < summary.mfu < 0.6
