"""What the single-GPU bench asks NVML for: the same identity rule as the multi-GPU ranks.

torch's CUDA device properties cannot exist without a GPU: a namespace with the two fields the code
reads (`uuid` without its prefix, as torch gives it; `name`, as CUDA names a MIG device) stands in.
The UUIDs are the MIG-mode A100 of the smi corpus and its MIG device, as nvidia-smi -L lists them.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from svdops.bench.environment import nvml_device_id

GPU = "GPU-27b94a00-ed54-5c24-b1fd-1054085de32a"
MIG = "MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f"


def fake_torch(uuid: str, name: str) -> SimpleNamespace:
    props = SimpleNamespace(uuid=uuid, name=name)
    return SimpleNamespace(cuda=SimpleNamespace(get_device_properties=lambda index: props))


def test_a_whole_gpu_is_asked_for_by_its_gpu_uuid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    torch = fake_torch(GPU.removeprefix("GPU-"), "NVIDIA A100-SXM4-80GB")
    assert nvml_device_id("cuda:0", torch) == GPU
    assert nvml_device_id("cpu", torch) == 0


def test_a_mig_device_keeps_its_mig_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    # under `GPU-` NVML finds nothing and every telemetry sample of the run was lost
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    torch = fake_torch(MIG.removeprefix("MIG-"), "NVIDIA A100-SXM4-80GB MIG 1g.10gb")
    assert nvml_device_id("cuda:0", torch) == MIG


def test_the_schedulers_entry_is_what_nvml_knows(monkeypatch: pytest.MonkeyPatch) -> None:
    legacy = f"MIG-{GPU}/1/0"  # the pre-R470 form a scheduler may still hand out
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", f"{GPU},{legacy}")
    torch = fake_torch("c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f", "NVIDIA A100-SXM4-80GB MIG 1g.10gb")
    assert nvml_device_id("cuda:1", torch) == legacy
