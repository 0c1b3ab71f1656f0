"""DCGM diagnostics: run `dcgmi diag -r LEVEL -j`, read its JSON, one check per test and GPU.

Two document shapes exist, and both are read:

- DCGM 3.x: `{"DCGM GPU Diagnostic": {"test_categories": [{"category", "tests": [{"name", "results":
  [{"gpu_ids": "0,1,2,3" | 0, "status": "PASS", "warnings": [...], "info": ...}]}]}], "version"}}`;
  statuses in capitals, one result covering several GPUs in the Deployment tests, `null` between tests.
- DCGM 4.x: `{"DCGM Diagnostic": {"test_categories": [... "results": [{"entity_group": "GPU",
  "entity_id": 0, "status": "Pass", "warnings": [{"warning", "error_id", ...}], "info": [...]}],
  "test_summary": {...}]}, "entity_groups": [...], "metadata": {"version", "Driver Version Detected"}}`.

dcgmi may print a line before the JSON ("Successfully ran diagnostic for group.") and exits non-zero
when a test fails, so the exit code alone says nothing: the document does. Everything here is
untrusted text from a tool: bounded, type-checked, never evaluated.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from svdops.runs.documents import BurnCheck

# How long a level may run before it is stopped (NVIDIA's documented durations, with room: level 1
# about a minute, 2 a few minutes, 3 about 30 minutes, 4 one to two hours).
LEVEL_TIMEOUT_S = {1: 300.0, 2: 900.0, 3: 3600.0, 4: 3 * 3600.0}
MAX_TEXT = 600  # of one check's detail: DCGM's info lists can be long
MAX_DOCUMENT_BYTES = 32 * 2**20
_STATUS = {
    "pass": "pass",
    "fail": "fail",
    "warn": "warn",
    "warning": "warn",
    "skip": "skip",
    "skipped": "skip",
    "not run": "skip",
    "notrun": "skip",
}


class DcgmError(Exception):
    """dcgmi gave no diagnostic document (not installed, hostengine down, timed out, not JSON)."""


@dataclass
class DcgmDiag:
    version: str | None = None
    driver: str | None = None
    checks: list[BurnCheck] = field(default_factory=list)
    runtime_error: str | None = None


def find_dcgmi() -> str | None:
    return shutil.which("dcgmi")


def diag_argv(dcgmi: str, level: int, gpus: Sequence[int] | None) -> list[str]:
    argv = [dcgmi, "diag", "-r", str(level), "-j"]
    if gpus:
        argv += ["-i", ",".join(str(g) for g in gpus)]
    return argv


Runner = Callable[..., "subprocess.CompletedProcess[str]"]


def run_diag(
    dcgmi: str,
    level: int,
    gpus: Sequence[int] | None = None,
    *,
    timeout_s: float | None = None,
    runner: Runner = subprocess.run,
) -> DcgmDiag:
    """Run the level and parse what it printed. Raises DcgmError when there is no document to read."""
    if level not in LEVEL_TIMEOUT_S:
        raise ValueError(f"DCGM diagnostic level {level} is not 1-4")
    argv = diag_argv(dcgmi, level, gpus)
    try:
        proc = runner(
            argv,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout_s or LEVEL_TIMEOUT_S[level],
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise DcgmError(f"`{' '.join(argv)}` did not finish within {exc.timeout:.0f} s") from exc
    except OSError as exc:
        raise DcgmError(f"cannot run {dcgmi}: {exc.strerror or exc}") from exc
    try:
        return parse_diag(proc.stdout or "")
    except DcgmError as exc:
        said = " ".join(((proc.stderr or "") + " " + (proc.stdout or "")).split())[:300]
        raise DcgmError(
            f"`{' '.join(argv)}` exited {proc.returncode}: {exc}" + (f"; it said: {said}" if said else "")
        ) from None


def parse_diag(text: str) -> DcgmDiag:
    """A `dcgmi diag -j` document (3.x or 4.x) -> checks named as DCGM names its tests, per GPU."""
    if len(text) > MAX_DOCUMENT_BYTES:
        raise DcgmError(f"the output is {len(text)} bytes, more than a diagnostic document can be")
    start = text.find("{")
    if start < 0:
        raise DcgmError("no JSON document in the output")
    try:
        data, _ = json.JSONDecoder().raw_decode(text[start:])
    except (json.JSONDecodeError, RecursionError) as exc:
        raise DcgmError(f"the JSON document does not read: {exc}") from None
    if not isinstance(data, dict):  # pragma: no cover - the document starts at a "{", so it is an object
        raise DcgmError("the JSON document is not an object")
    root = data.get("DCGM Diagnostic", data.get("DCGM GPU Diagnostic"))
    if not isinstance(root, dict):
        raise DcgmError("no 'DCGM Diagnostic' (4.x) or 'DCGM GPU Diagnostic' (3.x) object in the document")
    found_metadata = data.get("metadata")
    metadata: dict[str, Any] = found_metadata if isinstance(found_metadata, dict) else {}
    diag = DcgmDiag(
        version=_text(metadata.get("version")) or _text(root.get("version")),
        driver=_text(metadata.get("Driver Version Detected")) or _text(root.get("Driver Version Detected")),
        runtime_error=_text(root.get("runtime_error")),
    )
    categories = root.get("test_categories")
    for category in categories if isinstance(categories, list) else []:
        if not isinstance(category, dict):
            continue
        name = _text(category.get("category"))
        tests = category.get("tests")
        for test in tests if isinstance(tests, list) else []:
            if isinstance(test, dict):  # 3.x puts null between tests
                diag.checks.extend(checks_of_test(test, name))
    if diag.runtime_error:
        diag.checks.append(
            BurnCheck(name="runtime_error", source="dcgm", status="fail", detail=_clip(diag.runtime_error))
        )
    if not diag.checks:
        raise DcgmError("the document lists no test results")
    return diag


def checks_of_test(test: dict[str, Any], category: str | None = None) -> list[BurnCheck]:
    """One DCGM test object -> one check per GPU it reports on (a 3.x "0,1,2,3" result -> four)."""
    name = _text(test.get("name")) or "unnamed test"
    checks: list[BurnCheck] = []
    results = test.get("results")
    for result in results if isinstance(results, list) else []:
        if not isinstance(result, dict):
            continue
        status = _status(result.get("status"))
        detail = _detail(result, status)
        for gpu in _gpus(result):
            checks.append(BurnCheck(name=name, source="dcgm", category=category, gpu=gpu, status=status, detail=detail))
    summary = test.get("test_summary")
    if not checks and isinstance(summary, dict):  # a test that ran on no entity still says how it went
        status = _status(summary.get("status"))
        checks.append(
            BurnCheck(name=name, source="dcgm", category=category, status=status, detail=_detail(summary, status))
        )
    return checks


def _gpus(result: dict[str, Any]) -> list[int | None]:
    if "entity_id" in result:  # 4.x
        group = result.get("entity_group")
        entity = result.get("entity_id")
        if (group in (None, "GPU")) and isinstance(entity, int) and not isinstance(entity, bool) and entity >= 0:
            return [entity]
        return [None]  # a CPU, a link, a switch: about the host, not a GPU index
    ids = result.get("gpu_ids", result.get("gpu_id"))
    if isinstance(ids, int) and not isinstance(ids, bool) and ids >= 0:
        return [ids]
    if isinstance(ids, str):
        found: list[int | None] = [int(part) for part in ids.split(",") if part.strip().isdigit()]
        return list(dict.fromkeys(found))[:256] or [None]
    return [None]


def _status(value: Any) -> str:
    # an unknown word is not evidence of health: a warning, with DCGM's word kept in the detail
    return _STATUS.get(str(value).strip().lower(), "warn") if isinstance(value, str) else "warn"


def _detail(result: dict[str, Any], status: str) -> str | None:
    parts: list[str] = []
    raw = result.get("status")
    if status == "warn" and isinstance(raw, str) and raw.strip().lower() not in _STATUS:
        parts.append(f"DCGM status {raw[:40]!r}")
    for key in ("warnings", "info"):
        value = result.get(key)
        items = value if isinstance(value, list) else [value]
        for item in items:
            text = _text(item.get("warning")) if isinstance(item, dict) else _text(item)
            if text:
                error_id = item.get("error_id") if isinstance(item, dict) else None
                parts.append(f"{text} (DCGM error {error_id})" if isinstance(error_id, int) else text)
    return _clip("; ".join(parts)) if parts else None


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return " ".join(value.split())
    return None


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 3] + "..."
