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

    def heartbeat(self, activity: str) -> None:
        self.log.heartbeat(activity)

    def sync(self) -> None:
        if self.device.startswith("cuda"):
            self.torch.cuda.synchronize(self.device)

    def barrier(self, label: str) -> None:
        """A barrier that tells the launcher this rank is waiting, not hung."""
        self.heartbeat(WAITING + label)
        self.dist.barrier()
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
