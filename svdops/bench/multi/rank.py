"""What one rank's workload works with: who it is, its device, a log that survives its death, barriers.

The log is rewritten (tmp + rename) after every finished iteration, so a rank that is killed
mid-way leaves every iteration it finished on disk for the merge. The heartbeat file's mtime is
the rank's last sign of progress and its text what it is doing; the launcher reads both to tell
a hung rank (no progress, not waiting) from ranks blocked in a collective waiting for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from svdops.files import atomic_write_json, atomic_write_text

WAITING = "waiting: "
BARRIER_POLL_S = 0.2


def rendezvous_store(dist: Any) -> Any:
    """The store init_process_group met the other ranks through (torchrun's TCPStore, shared by
    every node of the job). torch has no public getter for it; this one has been there since 1.x."""
    return dist.distributed_c10d._get_default_store()


def rank_log_path(staging: Path, rank: int) -> Path:
    return staging / f"rank-{rank}.json"


def heartbeat_path(staging: Path, rank: int) -> Path:
    return staging / f"rank-{rank}.beat"


@dataclass
class RankLog:
    """One rank's document: identity, status, iteration records, workload figures, telemetry."""

    path: Path
    beat: Path
    doc: dict[str, Any] = field(default_factory=dict)
    telemetry: Callable[[], dict[str, Any]] | None = None  # rows and marks so far, from the sampler

    def save(self) -> None:
        if self.telemetry is not None:
            self.doc.update(self.telemetry())
        atomic_write_json(self.path, self.doc, indent=None)

    def record(self, row: dict[str, Any]) -> None:
        self.doc.setdefault("records", []).append(row)
        self.save()

    def heartbeat(self, activity: str) -> None:
        # Replaced, not rewritten in place: the launcher must never read a truncated, empty beat.
        atomic_write_text(self.beat, activity)


@dataclass
class RankContext:
    rank: int
    world_size: int
    local_rank: int
    device: str
    backend: str
    spec: dict[str, Any]
    log: RankLog
    dist: Any  # torch.distributed
    torch: Any
    mark: Callable[[str], None] = lambda label: None
    # The rendezvous store (torchrun's TCPStore) the barriers wait on; None: a collective barrier.
    store: Any = None
    barriers: int = 0  # how many this rank has passed: every rank passes them in the same order

    def heartbeat(self, activity: str) -> None:
        self.log.heartbeat(activity)

    def sync(self) -> None:
        if self.device.startswith("cuda"):
            self.torch.cuda.synchronize(self.device)

    def barrier(self, label: str) -> None:
        """Every rank waits here for every other, and tells the launcher it is waiting, not hung.

        Through the store, not a collective: the process group's timeout (the rank timeout plus a
        margin) bounds every collective, and a wait here can be far longer (rank 0's one-GPU
        baseline: 5 iterations at 160 s on a slow card). Polling the store has no such bound; a
        rank that never arrives is the launcher's watchdog's to find (the waiting ranks' heartbeat
        is written once, so it ages), a rank that dies is torchrun's.
        """
        self.heartbeat(WAITING + label)
        if self.store is None:
            self.dist.barrier()
        else:
            self.barriers += 1
            key = f"svdops/barrier/{self.barriers}"
            self.store.add(key, 1)
            while self.store.add(key, 0) < self.world_size:
                time.sleep(BARRIER_POLL_S)
            # Rank 0 may host the store (init_process_group without torchrun's agent store): it
            # leaves only once every rank has seen the count, or a rank still polling finds the
            # store gone ("recvValue failed ... remote server shutdown") when rank 0 exits.
            self.store.add(key + "/out", 1)
            if self.rank == 0:
                while self.store.add(key + "/out", 0) < self.world_size:
                    time.sleep(BARRIER_POLL_S)
        self.heartbeat(f"past {label}")

    @contextmanager
    def waiting(self, label: str) -> Iterator[None]:
        self.heartbeat(WAITING + label)
        yield
        self.heartbeat(f"past {label}")

    def set_result(self, **values: Any) -> None:
        self.log.doc.setdefault("result", {}).update(values)
        self.log.save()


def record_row(
    phase: str,
    iteration: int,
    *,
    seconds: float,
    items: int,
    warmup: bool = False,
    t_start_unix: float | None = None,
    stages: dict[str, float] | None = None,
    steps_s: list[float] | None = None,
    loss: float | None = None,
) -> dict[str, Any]:
    """One row of the merged iterations.csv (see merge.ITERATION_COLUMNS)."""
    import statistics

    stages = stages or {}
    return {
        "phase": phase,
        "iteration": iteration,
        "warmup": warmup,
        "t_start_unix": t_start_unix if t_start_unix is not None else time.time() - seconds,
        "seconds": seconds,
        "items": items,
        "clip_s": stages.get("clip"),
        "vae_encode_s": stages.get("vae_encode"),
        "unet_s": stages.get("unet"),
        "unet_step_median_s": statistics.median(steps_s) if steps_s else None,
        "decode_s": stages.get("decode"),
        "loss": loss,
    }
