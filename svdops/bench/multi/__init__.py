"""`svdops bench` on several GPUs and hosts: torchrun launches the ranks, this package measures.

No process manager of our own: `launcher` runs `python -m torch.distributed.run` (c10d rendezvous
across hosts, or writes an sbatch script for Slurm), watches the ranks' heartbeats and merges
their results into one run folder.

    launcher    plan, torchrun command line, Slurm script, supervision (--rank-timeout)
    worker      the per-rank entry point: pinning, process group, telemetry, one workload
    rank        what a workload gets: its rank, device, a checkpointed log and barriers
    infer_dp    one pipeline per GPU, videos split across ranks
    infer_cfg   a GPU pair per video: conditional and unconditional UNet halves on separate GPUs
    train_ddp   a fine-tuning step of the SVD UNet under DistributedDataParallel
    nccl_sweep  all-reduce bandwidth sweep, algbw and busbw as nccl-tests define them
    merge       per-rank logs + telemetry -> one run folder (scaling / nccl entries)
    topology    link type between the ranks' GPUs, expected bandwidth, NUMA pinning

Importing this package (and `launcher`, `merge`, `topology`) does not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from svdops.bench.config import BenchRequest

WORKLOADS = ("infer-dp", "infer-cfg", "train-ddp", "nccl")
DEFAULT_RANK_TIMEOUT_S = 600.0
MB = 2**20
NCCL_MIN_BYTES = MB
NCCL_MAX_BYTES_GPU = 4 * 2**30  # 4 GB, the top of the usual nccl-tests range
NCCL_MAX_BYTES_CPU = 16 * MB  # gloo over loopback: a bigger sweep only costs time on a CPU run


@dataclass(frozen=True)
class MultiRequest:
    """What the user asked of a multi-process run; `bench` carries the pipeline options."""

    bench: BenchRequest = field(default_factory=BenchRequest)
    workload: str = "infer-dp"
    gpus: tuple[int, ...] | None = None  # None: every visible GPU (`--gpus all`)
    nproc_per_node: int | None = None
    nnodes: int = 1
    node_rank: int | None = None
    rdzv_endpoint: str | None = None
    rank_timeout_s: float = DEFAULT_RANK_TIMEOUT_S
    nccl_max_bytes: int | None = None
    grad_checkpointing: bool = True  # without it the SVD-XT UNet's activations fit no card
