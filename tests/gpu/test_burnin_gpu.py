"""`svdops burnin` on a real GPU: what the CPU suite cannot exercise. Skipped without CUDA.

fp16 matmul on cuda:N under real NVML (clocks, power, reasons), the pattern test over most of the
free memory, pinned host-to-device copies against the PCIe figure from the host facts, and, with two
GPUs or more, P2P per pair and the NCCL all-reduce through the bench's torchrun sweep.
"""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

if not torch.cuda.is_available():
    pytest.skip("needs an NVIDIA GPU", allow_module_level=True)

from svdops.bench.burnin import BurninRequest  # noqa: E402
from svdops.bench.burnin.run import run_burnin  # noqa: E402
from svdops.runs.documents import BurnIn  # noqa: E402

pytestmark = [pytest.mark.gpu]


def test_burn_on_every_gpu_with_real_nvml(tmp_path):
    outcome = run_burnin(BurninRequest(duration_s=30, dcgm_level=None, store=str(tmp_path)))
    doc = BurnIn.read(json.loads((outcome.path / "burnin.json").read_text()))
    print(json.dumps([c.to_json() for c in doc.checks], indent=1))  # the figures, for the record
    gpus = torch.cuda.device_count()
    by = {}
    for check in doc.checks:
        by.setdefault(check.name, []).append(check)
    assert doc.status in ("ok", "failed") and doc.tests_not_run == []
    assert len(by["matmul"]) == gpus and all(c.figures["tflops"] > 50 for c in by["matmul"])  # fp16 tensor cores
    assert all(c.status != "skip" for c in by["clocks"]), "real NVML must give clock samples"
    assert all(c.figures["bytes_tested"] > 2**30 for c in by["memory"])
    h2d = by["h2d"]
    assert all(c.figures["measured_gbps"] > 5 for c in h2d)
    if gpus > 1:
        assert len(by["p2p"]) == gpus * (gpus - 1)
        assert by["nccl"][0].status != "skip"


def test_dcgm_when_installed(tmp_path):
    import shutil

    if shutil.which("dcgmi") is None:
        pytest.skip("dcgmi is not installed here")
    outcome = run_burnin(BurninRequest(dcgm_level=1, store=str(tmp_path)))
    assert outcome.doc.mode in ("dcgm", "burn")
    if outcome.doc.mode == "dcgm":
        assert any(c.source == "dcgm" for c in outcome.doc.checks)
