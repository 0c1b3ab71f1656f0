"""Burn-in runs (`svdops burnin`) for the report: one block per run, its failed and warned checks in full.

burnin.json is untrusted like every run file: read through the typed document, which keeps what reads
and notes the rest; a run whose burnin.json is missing or of another schema is shown with that note.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from svdops.errors import BadInputError
from svdops.report.run_fields import run_host, run_started
from svdops.runs.documents import BURNIN_FILE, BurnIn
from svdops.runs.store import Run

MAX_FILE_BYTES = 8 * 2**20
MAX_ROWS = 200  # shown per run; an 8-GPU p2p sweep is 56 rows


def is_burnin(run: Run) -> bool:
    return run.results.kind == "burnin"


def read_burnin(run: Run) -> tuple[BurnIn | None, str | None]:
    """The run's burnin.json, or (None, why not)."""
    path = run.path / BURNIN_FILE
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return None, f"{BURNIN_FILE} is larger than {MAX_FILE_BYTES // 2**20} MiB: not read"
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, f"no {BURNIN_FILE} in the run folder"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        return None, f"{BURNIN_FILE} does not read: {type(exc).__name__}"
    try:
        return BurnIn.read(data), None
    except BadInputError as exc:
        return None, str(exc)


def burnin_sections(runs: Sequence[Run]) -> list[dict[str, Any]]:
    sections = []
    for run in runs:
        if not is_burnin(run):
            continue
        doc, why = read_burnin(run)
        started = run_started(run)
        section: dict[str, Any] = {
            "run": run.name,
            "host": run_host(run),
            "started": started,
            "status": (doc.status if doc else None) or run.results.status or "unknown",
            "note": why,
        }
        if doc is not None:
            order = {"fail": 0, "warn": 1, "skip": 2, "pass": 3}
            checks = sorted(doc.checks, key=lambda c: order.get(c.status or "", 1))
            section.update(
                mode=doc.mode or "burn",
                dcgm_version=doc.dcgm_version,
                gpus=", ".join(str(g) for g in doc.gpus) or "–",
                counts=doc.counts(),
                rows=[_row(c) for c in checks[:MAX_ROWS]],
                truncated=max(0, len(checks) - MAX_ROWS),
                not_run=doc.tests_not_run,
                notes=[*doc.notes, *doc.read_notes],
            )
        sections.append(section)
    return sections


def _row(check: Any) -> dict[str, Any]:
    where = "host" if check.gpu is None else f"GPU{check.gpu}" + (f"→GPU{check.peer}" if check.peer is not None else "")
    return {
        "status": check.status or "warn",
        "name": check.name or "?",
        "source": check.source or "",
        "where": where,
        "detail": check.detail or "",
    }
