"""What `svdops check` says about a host: one Finding per rule (and per subject where a rule has many)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    PASS = "pass"  # noqa: S105 - a status, not a password
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"
    # a check the profile requires that could not look (probe failed, not recorded, rule crashed):
    # not a pass, so it fails the exit code like a FAIL unless the caller allows unknowns
    UNKNOWN = "unknown"


# skip ranks below pass: a report with nothing but skips has nothing wrong in it;
# unknown ranks between warn and fail: it fails the check, but a known failure says more
_SEVERITY = {Status.SKIP: 0, Status.PASS: 1, Status.WARN: 2, Status.UNKNOWN: 3, Status.FAIL: 4}


# Every check id `svdops check` can report, in report order: scripts and CI key on them, and a profile's
# `optional:` list is validated against them (svdops.judge.rules registers one rule per id or group of ids).
CHECK_IDS: tuple[str, ...] = (
    "os.id",
    "os.release",
    "driver.present",
    "driver.version",
    "driver.branch",
    "driver.flavor",
    "driver.reboot-required",
    "driver.nouveau",
    "driver.secure-boot",
    "driver.persistence",
    "driver.cuda-toolkit-compat",
    "driver.torch-cuda-compat",
    "gpu.count",
    "gpu.model",
    "gpu.vram",
    "gpu.compute-capability",
    "gpu.nvlink",
    "gpu.ecc",
    "cuda.toolkit",
    "cuda.arch-support",
    "cuda.cudnn",
    "cuda.nccl",
    "python.version",
    "python.env",
    "python.package",
    "torch.cuda-build",
    "torch.cuda-variant",
    "torch.arch-list",
    "python.diffusers-compat",
    "python.transformers-compat",
    "svd.pipeline-stack",
    "profile.svd-stack",
    "svd.vram",
    "ram.size",
    "storage.scratch",
    "storage.data",
    "storage.md-health",
    "health.memory",
    "health.pcie",
    "health.nvlink",
    "health.xid",
    "health.thermal",
    "health.fabric-manager",
)


@dataclass(frozen=True)
class Finding:
    """One judgement. `id` is dotted and stable (scripts and CI key on it); `hint` is the exact command
    (or, for hardware, the exact change) that fixes it, empty when there is nothing to fix. `subject`
    names the GPU, array or package when one rule yields a finding per item."""

    id: str
    title: str
    status: Status
    expected: str
    actual: str
    hint: str = ""
    subject: str = ""

    @property
    def key(self) -> str:
        """Unique within one check: `python.package[diffusers]` where a rule yields one per item."""
        return f"{self.id}[{self.subject}]" if self.subject else self.id


def fails_exit(status: Status, *, allow_unknown: bool = False) -> bool:
    """Whether a finding of this status makes the check exit 1: a fail always, an unknown unless allowed."""
    return status is Status.FAIL or (status is Status.UNKNOWN and not allow_unknown)


def summarize(findings: Iterable[Finding]) -> dict[str, int]:
    """Counts per status, every status present (zero when none), keyed by the status value."""
    counts = {status.value: 0 for status in Status}
    for finding in findings:
        counts[finding.status.value] += 1
    return counts


def worst(findings: Iterable[Finding]) -> Status:
    """The most severe status (fail > unknown > warn > pass > skip); pass for no findings at all."""
    result: Status | None = None
    for finding in findings:
        if result is None or _SEVERITY[finding.status] > _SEVERITY[result]:
            result = finding.status
    return result if result is not None else Status.PASS
