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

RUN_NAME_STAMP = re.compile(r"^(\d{8}T\d{6}Z)-(.+)$")


UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def run_scenario(run: Run) -> str:
    return run.results.scenario or run.config.scenario_name or "unknown"


def run_host(run: Run) -> str:
    """The host name from the facts, else from the folder name (`<stamp>-<host>-<scenario>[-N]`)."""
    if run.facts and run.facts.get("hostname"):
        return str(run.facts["hostname"])
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


def run_started(run: Run) -> datetime | None:
    text = run.results.started_at
    if text is not None:
        try:
            when = datetime.fromisoformat(text)
            return when if when.tzinfo else when.replace(tzinfo=UTC)
        except ValueError:
            pass
    match = RUN_NAME_STAMP.match(run.name)
    if match:
        return datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return None


def run_finished(run: Run) -> datetime | None:
    text = run.results.finished_at
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)  # comparable with run_started()


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
        if (gpu_name is None or gpu.get("name") == gpu_name) and isinstance(gpu.get("memory_total_mib"), int | float):
            return float(gpu["memory_total_mib"]) / 1024.0, "facts"
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


def as_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def as_text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def joined_text(*parts: Any) -> str | None:
    kept = [str(p) for p in parts if p]
    return ", ".join(kept) or None

