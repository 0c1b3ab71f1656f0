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


# skip ranks below pass: a report with nothing but skips has nothing wrong in it
_SEVERITY = {Status.SKIP: 0, Status.PASS: 1, Status.WARN: 2, Status.FAIL: 3}


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


def summarize(findings: Iterable[Finding]) -> dict[str, int]:
    """Counts per status, every status present (zero when none), keyed by the status value."""
    counts = {status.value: 0 for status in Status}
    for finding in findings:
        counts[finding.status.value] += 1
    return counts


def worst(findings: Iterable[Finding]) -> Status:
    """The most severe status (fail > warn > pass > skip); pass for no findings at all."""
    result: Status | None = None
    for finding in findings:
        if result is None or _SEVERITY[finding.status] > _SEVERITY[result]:
            result = finding.status
    return result if result is not None else Status.PASS
