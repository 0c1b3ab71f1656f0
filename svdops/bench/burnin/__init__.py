"""`svdops burnin`: an opt-in hardware burn-in. Never part of `svdops check` or `svdops bench`.

    dcgm    `dcgmi diag -r LEVEL -j` -> one check per DCGM test and GPU (DCGM's own test names)
    burn    without DCGM: sustained matmul on every GPU at once with NVML clocks/power/temperature,
            a device-memory pattern test, host-to-device and GPU-to-GPU copy bandwidth per pair
    run     the order, the time limits, Ctrl-C, and the run folder (burnin.json beside results.json)

The NCCL all-reduce comes from the bench's own sweep (svdops.bench.multi, through torchrun), so its
figures are the ones `svdops bench --workload nccl` gives. Importing this package does not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_DURATION_S = 60.0
MAX_DURATION_S = 24 * 3600.0
DEFAULT_DCGM_LEVEL = 2
MEMORY_FRACTION = 0.8  # of the free memory of each GPU
MEMORY_LIMIT_S = 300.0  # the pattern test stops after this (or after --duration, when shorter)
COPY_BYTES_GPU = 256 * 2**20
COPY_LIMIT_S = 10.0  # per host-GPU link or GPU pair
TELEMETRY_HZ = 2.0


@dataclass(frozen=True)
class BurninRequest:
    duration_s: float = DEFAULT_DURATION_S  # the matmul burn; the memory test is capped by it too
    gpus: tuple[int, ...] | None = None  # None: every visible GPU
    dcgm_level: int | None = DEFAULT_DCGM_LEVEL  # None: --no-dcgm
    store: str = "svdops-runs"
    device: str = "cuda"  # "cpu": the burn's mechanics on the CPU (a dry run; judges no GPU)
    matmul_size: int = 8192
    memory_fraction: float = MEMORY_FRACTION
    cpu_memory_bytes: int = 64 * 2**20  # what the memory test covers on the CPU
    nccl: bool = True
