"""One run's identity (scenario, host, GPU, start, capacity) and the helpers that read untrusted JSON
values from a run folder without ever raising.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from functools import cache
from typing import Any

from svdops.runs.store import Run

# Ends the note of a run or check file skipped because reading it failed in a way svdops did not foresee:
# the report of the others is still written, and the fuzz test counts these as internal errors.
BUG_NOTE = "this is a bug in svdops: please report it with the file"

RUN_NAME_STAMP = re.compile(r"^(\d{8}T\d{6}Z)-(.+)$")


UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def run_scenario(run: Run) -> str:
    return run.results.scenario or run.config.scenario_name or "unknown"


MAX_NAME_CHARS = 253  # a DNS name's limit: a longer "host name" is damage, shown cut


def run_host(run: Run) -> str:
    """The host name from the facts, else from the folder name (`<stamp>-<host>-<scenario>[-N]`)."""
    hostname = as_text((run.facts or {}).get("hostname"))
    if hostname:
        return hostname if len(hostname) <= MAX_NAME_CHARS else hostname[: MAX_NAME_CHARS - 1] + "…"
    match = RUN_NAME_STAMP.match(run.name)
    if not match:
        return run.name
    rest = match.group(2)
    # Host names and scenario names both contain dashes: strip the run's own scenario, else a known one.
    for scenario in (run_scenario(run), *known_scenarios()):
        part = UNSAFE_CHARS.sub("_", scenario).strip("._")
        stripped = re.sub(rf"-{re.escape(part)}(-\d+)?$", "", rest)
        if stripped != rest:
            return stripped or "unknown"
    return rest


@cache
def known_scenarios() -> tuple[str, ...]:
    from svdops.scenarios import scenario_names

    return tuple(sorted(scenario_names(), key=len, reverse=True))  # svd-xt-25f before a shorter prefix


def _utc(text: str | None) -> datetime | None:
    """An ISO time in UTC (a time without a zone is UTC), or None when it is not one a report can show."""
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
        # In UTC, so that every time compares and prints alike; year 1 at +14:00 has no UTC: not a time.
        return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        return None


def run_started(run: Run) -> datetime | None:
    when = _utc(run.results.started_at)
    if when is not None:
        return when
    match = RUN_NAME_STAMP.match(run.name)
    if match:
        try:
            return datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:  # 20261399T...: the right shape, not a date
            return None
    return None


def run_finished(run: Run) -> datetime | None:
    return _utc(run.results.finished_at)  # comparable with run_started()


def run_gpu(run: Run) -> str | None:
    telemetry = run.results.telemetry
    for value in (run.results.gpu, run.versions.gpu, telemetry.gpu if telemetry else None):
        if value:
            return value
    return None


def facts_gpus(run: Run) -> list[dict[str, Any]]:
    gpus = (run.facts or {}).get("gpus")
    return [g for g in gpus if isinstance(g, dict)] if isinstance(gpus, list) else []


def is_reference(run: Run) -> bool:
    return run.results.is_reference


@cache
def gpu_spec(gpu_name: str) -> Any:
    from svdops.judge.knowledge import find_gpu_spec

    return find_gpu_spec(gpu_name)


def gpu_capacity_gib(run: Run, gpu_name: str | None) -> tuple[float | None, str]:
    """The card's memory and where the figure comes from: the host's facts, else the spec sheet."""
    gpus = facts_gpus(run)
    for gpu in gpus:
        memory_mib = as_number(gpu.get("memory_total_mib"))
        if (gpu_name is None or gpu.get("name") == gpu_name) and memory_mib is not None and memory_mib > 0:
            return memory_mib / 1024.0, "facts"
    if gpu_name:
        spec = gpu_spec(gpu_name)
        if spec is not None:
            return spec.memory_gb * 1e9 / 2**30, "spec sheet"
    return None, "no GPU"


def power_cap_w(run: Run) -> float | None:
    telemetry = run.results.telemetry
    summary = telemetry.summary if telemetry else None
    if summary is not None and summary.power_limit_w is not None:
        return float(summary.power_limit_w)
    for gpu in facts_gpus(run):
        if as_number(gpu.get("power_limit_w")) is not None:
            return as_number(gpu.get("power_limit_w"))
    return None


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer of hundreds of digits: not a measurement
        return None
    return number if math.isfinite(number) else None


def as_count(value: Any) -> int | None:
    """A whole number (frames, steps, a chunk size) as an int; None for anything else."""
    number = as_number(value)
    return int(number) if number is not None and number.is_integer() else None


def as_text(value: Any) -> str | None:
    """A scalar as text; None for nothing and for lists and objects (their str() can be megabytes or recurse)."""
    if value is None or value == "" or not isinstance(value, str | int | float | bool):
        return None
    return str(value)


def joined_text(*parts: Any) -> str | None:
    kept = [text for text in (as_text(p) for p in parts if p) if text]
    return ", ".join(kept) or None

