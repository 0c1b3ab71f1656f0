"""Run folders and check files -> pandas frames. The only module that knows where a figure lives in a run.

Everything downstream (charts, templates, `--export`) reads these frames, never the run files, so a
run written by an older or newer svdops, or one with pieces missing (an OOM, an interrupted run, no
telemetry, facts null), degrades to empty cells here instead of failing somewhere in a template.

Frames:
    runs         one row per run folder
    points       one row per configuration point of every run: the merged table `--export` writes
    groups       points of the same host, GPU and configuration merged (median over runs), ranked
    environment  one row per host: GPU, driver, CUDA, cuDNN, NCCL, torch, diffusers, weights
    findings     one row per check finding (from `svdops check --format json` files)
    scaling      multi-GPU runs: throughput at a world size against the single-GPU baseline
    nccl         all-reduce sweep rows (size_bytes, algbw_gbps, busbw_gbps, ...)

Multi-GPU runs (svdops.bench.multi) carry `scaling` (a dict: workload, world_size, throughput
{value, unit}, baseline, speedup, efficiency) and `nccl` (a list of rows) in results.json, an empty
`points` list, and every rank's GPU in telemetry.csv (a `rank` column). A section is rendered only
when some run has them.
"""

from __future__ import annotations

import fnmatch
import glob
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd

from svdops.errors import BadInputError
from svdops.store import TMP_PREFIX, Run, load_run

CHECK_SCHEMA = "svdops.check/1"
FLEET_CHECK_SCHEMA = "svdops.fleet-check/1"
RANK_METRICS = ("videos_per_hour", "cost", "energy")
# metric -> (column in the groups frame, larger is better)
RANK_COLUMNS: dict[str, tuple[str, bool]] = {
    "videos_per_hour": ("videos_per_hour", True),
    "cost": ("cost_per_1000_usd", False),
    "energy": ("energy_j_per_video", False),
}
_STAMP = re.compile(r"^(\d{8}T\d{6}Z)-(.+)$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*$")
_DURATION_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True)
class RunFilter:
    """Which runs a report keeps. Host and scenario are shell-style patterns (`gpu0*`)."""

    hosts: tuple[str, ...] = ()
    scenarios: tuple[str, ...] = ()
    since: datetime | None = None

    def keeps(self, host: str, scenario: str, started: datetime | None) -> bool:
        if self.hosts and not any(fnmatch.fnmatchcase(host, p) for p in self.hosts):
            return False
        if self.scenarios and not any(fnmatch.fnmatchcase(scenario, p) for p in self.scenarios):
            return False
        # A run with no readable start time cannot be shown to be recent enough: leave it out.
        return self.since is None or (started is not None and started >= self.since)

    def describe(self) -> list[str]:
        parts = []
        if self.hosts:
            parts.append("host " + " or ".join(self.hosts))
        if self.scenarios:
            parts.append("scenario " + " or ".join(self.scenarios))
        if self.since is not None:
            parts.append(f"since {self.since.isoformat(timespec='minutes')}")
        return parts


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """`2026-11-26`, `2026-11-26T10:00`, an ISO time with offset, or an age: `90m`, `12h`, `7d`, `2w`."""
    match = _DURATION.match(text)
    if match:
        amount, unit = float(match.group(1)), _DURATION_UNITS[match.group(2)]
        return (now or datetime.now(UTC)) - timedelta(**{unit: amount})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadInputError(
            f"cannot read {text!r} as a date, a time or an age",
            where="--since",
            hint="use 2026-11-26, 2026-11-26T10:00, or an age such as 12h, 7d, 2w",
        ) from None
    # A time without a zone is read as UTC: run folder names and results.json are in UTC.
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def parse_prices(items: Iterable[str]) -> dict[str, float]:
    """`HOST=USD_PER_HOUR` pairs; HOST may be a pattern (`gpu0*=2.5`)."""
    prices: dict[str, float] = {}
    for item in items:
        host, sep, value = item.partition("=")
        try:
            price = float(value)
        except ValueError:
            price = math.nan
        if not sep or not host.strip() or not math.isfinite(price) or price < 0:
            raise BadInputError(
                f"cannot read price {item!r}", where="--price", hint="use HOST=USD_PER_HOUR, e.g. --price gpu01=2.49"
            )
        prices[host.strip()] = price
    return prices


def price_for(host: str, prices: Mapping[str, float]) -> float | None:
    """An exact host name wins over a pattern, so `--price '*=2' --price big=9` does what it says."""
    if host in prices:
        return prices[host]
    for pattern, price in prices.items():
        if fnmatch.fnmatchcase(host, pattern):
            return price
    return None


# --- finding run folders -------------------------------------------------------------------------


@dataclass
class RunSelection:
    runs: list[Run]
    skipped: list[str] = field(default_factory=list)  # why a folder was passed over, for the report's notes
    matched_before_filter: int = 0


def _expand(arg: str) -> list[Path]:
    if glob.has_magic(arg):
        found = sorted(Path(p) for p in glob.glob(arg))
        if not found:
            raise BadInputError(f"no file or folder matches {arg!r}", where="RUNS", hint="check the pattern")
        return found
    path = Path(arg)
    if not path.exists():
        raise BadInputError(
            "no such run folder or store", where=arg, hint="pass run folders or a store (default ./svdops-runs)"
        )
    return [path]


def find_runs(args: Sequence[str], run_filter: RunFilter | None = None) -> RunSelection:
    """Run folders from paths and globs; a folder without results.json is read as a store of runs."""
    run_filter = run_filter or RunFilter()
    selection = RunSelection(runs=[])
    seen: set[Path] = set()
    candidates: list[Path] = []
    for arg in args:
        for path in _expand(arg):
            if (path / "results.json").is_file() or path.name.startswith(TMP_PREFIX):
                candidates.append(path)
            elif path.is_dir():
                children = sorted(c for c in path.iterdir() if c.is_dir())
                for child in children:
                    if child.name.startswith(TMP_PREFIX):
                        selection.skipped.append(f"{child}: unfinished run (its writer stopped before committing it)")
                    elif (child / "results.json").is_file():
                        candidates.append(child)
            else:
                raise BadInputError("not a run folder or a store", where=str(path), hint="pass a folder")
    for path in candidates:
        if path.name.startswith(TMP_PREFIX):
            selection.skipped.append(f"{path}: unfinished run (its writer stopped before committing it)")
            continue
        resolved = path.resolve()
        if resolved in seen:
            continue
        seen.add(resolved)
        try:
            run = load_run(path)
        except BadInputError as exc:  # one unreadable run must not cost the report on the other 999
            selection.skipped.append(str(exc))
            continue
        selection.matched_before_filter += 1
        if run_filter.keeps(run_host(run), run_scenario(run), run_started(run)):
            selection.runs.append(run)
    selection.runs.sort(key=lambda r: (run_started(r) or datetime.min.replace(tzinfo=UTC), r.name))
    return selection


# --- one run's identity ----------------------------------------------------------------------------


def run_scenario(run: Run) -> str:
    return str(run.results.get("scenario") or run.config.get("request", {}).get("scenario") or "unknown")


def run_host(run: Run) -> str:
    """The host name from the facts, else from the folder name (`<stamp>-<host>-<scenario>[-N]`)."""
    if run.facts and run.facts.get("hostname"):
        return str(run.facts["hostname"])
    match = _STAMP.match(run.name)
    if not match:
        return run.name
    rest = match.group(2)
    # Host names and scenario names both contain dashes: strip the run's own scenario, else a known one.
    for scenario in (run_scenario(run), *_known_scenarios()):
        part = _UNSAFE.sub("_", scenario).strip("._")
        stripped = re.sub(rf"-{re.escape(part)}(-\d+)?$", "", rest)
        if stripped != rest:
            return stripped or "unknown"
    return rest


@cache
def _known_scenarios() -> tuple[str, ...]:
    from svdops.bench.config import scenario_names

    return tuple(sorted(scenario_names(), key=len, reverse=True))  # svd-xt-25f before a shorter prefix


def run_started(run: Run) -> datetime | None:
    text = run.results.get("started_at")
    if isinstance(text, str):
        try:
            when = datetime.fromisoformat(text)
            return when if when.tzinfo else when.replace(tzinfo=UTC)
        except ValueError:
            pass
    match = _STAMP.match(run.name)
    if match:
        return datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return None


def _finished(run: Run) -> datetime | None:
    text = run.results.get("finished_at")
    if not isinstance(text, str):
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)  # comparable with run_started()


def run_gpu(run: Run) -> str | None:
    telemetry = run.results.get("telemetry") if isinstance(run.results.get("telemetry"), dict) else {}
    for value in (run.results.get("gpu"), run.versions.get("gpu"), (telemetry or {}).get("gpu")):
        if value:
            return str(value)
    return None


def _facts_gpus(run: Run) -> list[dict[str, Any]]:
    gpus = (run.facts or {}).get("gpus")
    return [g for g in gpus if isinstance(g, dict)] if isinstance(gpus, list) else []


def is_reference(run: Run) -> bool:
    return bool(run.results.get("provenance"))


@cache
def _spec(gpu_name: str) -> Any:
    from svdops.knowledge import find_gpu_spec

    return find_gpu_spec(gpu_name)


def gpu_capacity_gib(run: Run, gpu_name: str | None) -> tuple[float | None, str]:
    """The card's memory and where the figure comes from: the host's facts, else the spec sheet."""
    gpus = _facts_gpus(run)
    for gpu in gpus:
        if (gpu_name is None or gpu.get("name") == gpu_name) and isinstance(gpu.get("memory_total_mib"), int | float):
            return float(gpu["memory_total_mib"]) / 1024.0, "facts"
    if gpu_name:
        spec = _spec(gpu_name)
        if spec is not None:
            return spec.memory_gb * 1e9 / 2**30, "spec sheet"
    return None, "no GPU"


def _power_cap_w(run: Run) -> float | None:
    summary = _dict(_dict(run.results.get("telemetry")).get("summary"))
    if _num(summary.get("power_limit_w")) is not None:
        return _num(summary.get("power_limit_w"))
    for gpu in _facts_gpus(run):
        if _num(gpu.get("power_limit_w")) is not None:
            return _num(gpu.get("power_limit_w"))
    return None


# --- helpers for untrusted JSON ----------------------------------------------------------------------


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _stat(summary: Mapping[str, Any], key: str, which: str) -> float | None:
    return _num(_dict(summary.get(key)).get(which))


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


# --- frames -----------------------------------------------------------------------------------------


RUN_COLUMNS = [
    "run",
    "path",
    "host",
    "scenario",
    "status",
    "started_at",
    "duration_s",
    "device",
    "gpu",
    "gpu_memory_gib",
    "gpu_memory_source",
    "power_cap_w",
    "weights",
    "provenance",
    "reference",
    "points",
    "telemetry_samples",
    "facts_recorded",
    "notes",
    "errors",
]


def runs_frame(runs: Sequence[Run]) -> pd.DataFrame:
    rows = []
    for run in runs:
        started, finished = run_started(run), _finished(run)
        gpu = run_gpu(run)
        capacity, capacity_source = gpu_capacity_gib(run, gpu)
        points = [p for p in run.results.get("points") or [] if isinstance(p, dict)]
        errors = [str(p["error"]) for p in points if p.get("error")]
        rows.append(
            {
                "run": run.name,
                "path": str(run.path),
                "host": run_host(run),
                "scenario": run_scenario(run),
                "status": run.status,
                "started_at": started,
                "duration_s": (finished - started).total_seconds() if started and finished else None,
                "device": _text(run.results.get("device")),
                "gpu": gpu,
                "gpu_memory_gib": capacity,
                "gpu_memory_source": capacity_source,
                "power_cap_w": _power_cap_w(run),
                "weights": weights_text(run),
                "provenance": _text(run.results.get("provenance")),
                "reference": is_reference(run),
                "points": len(points),
                "telemetry_samples": telemetry_samples(run),
                "facts_recorded": run.facts is not None,
                "notes": [str(n) for n in run.results.get("notes") or [] if n],
                "errors": errors,
            }
        )
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def weights_text(run: Run) -> str | None:
    weights = run.results.get("weights") or run.config.get("weights")
    if isinstance(weights, dict):
        return _text(weights.get("description")) or _text(weights.get("kind"))
    return _text(weights)


def workload_label(config: Mapping[str, Any]) -> str:
    """What a video is (frames, size, steps): runs are only ranked against runs making the same video."""
    parts = []
    if config.get("frames") is not None:
        parts.append(f"{config['frames']} frames")
    if config.get("height") is not None and config.get("width") is not None:
        parts.append(f"{config['height']}x{config['width']}")
    if config.get("steps") is not None:
        parts.append(f"{config['steps']} steps")
    return ", ".join(parts) or "unknown"


def config_label(config: Mapping[str, Any]) -> str:
    """`25f 576x1024 25 steps chunk 8 fp16` plus whatever departs from the defaults."""
    parts = []
    if config.get("frames") is not None:
        parts.append(f"{config['frames']}f")
    if config.get("height") is not None and config.get("width") is not None:
        parts.append(f"{config['height']}x{config['width']}")
    if config.get("steps") is not None:
        parts.append(f"{config['steps']} steps")
    if config.get("decode_chunk") is not None:
        parts.append(f"chunk {config['decode_chunk']}")
    if config.get("dtype"):
        parts.append(str(config["dtype"]))
    if (config.get("videos_per_call") or 1) != 1:
        parts.append(f"x{config['videos_per_call']}/call")
    for flag, word in (("compile", "compiled"), ("cpu_offload", "offload"), ("forward_chunking", "ff-chunks")):
        if config.get(flag):
            parts.append(word)
    return " ".join(parts) or "default"


POINT_COLUMNS = [
    "host",
    "gpu",
    "scenario",
    "workload",
    "config",
    "run",
    "point",
    "status",
    "error",
    "started_at",
    "reference",
    "device",
    "frames",
    "height",
    "width",
    "steps",
    "decode_chunk",
    "dtype",
    "videos_per_call",
    "compile",
    "iterations",
    "videos_per_hour",
    "e2e_p50_s",
    "e2e_p90_s",
    "unet_step_p50_s",
    "unet_step_p90_s",
    "unet_tflops",
    "peak_tflops",
    "mfu",
    "frames_per_s",
    "encode_s",
    "unet_s",
    "decode_s",
    "other_s",
    "peak_allocated_gib",
    "peak_reserved_gib",
    "gpu_memory_gib",
    "energy_j_per_video",
    "kwh_per_1000",
    "power_w_median",
    "power_w_max",
    "power_cap_w",
    "temp_c_max",
    "sm_mhz_median",
    "throttled",
    "power_capped",
    "price_usd_per_hour",
    "cost_per_1000_usd",
    "weights",
]


def points_frame(runs: Sequence[Run], prices: Mapping[str, float] | None = None) -> pd.DataFrame:
    """One row per configuration point: the merged table. Missing figures are NaN, never an error."""
    prices = prices or {}
    rows = []
    for run in runs:
        host, gpu = run_host(run), run_gpu(run)
        capacity, _ = gpu_capacity_gib(run, gpu)
        base = {
            "host": host,
            "gpu": gpu,
            "scenario": run_scenario(run),
            "run": run.name,
            "started_at": run_started(run),
            "reference": is_reference(run),
            "device": _text(run.results.get("device")),
            "gpu_memory_gib": capacity,
            "power_cap_w": _power_cap_w(run),
            "weights": weights_text(run),
            "price_usd_per_hour": price_for(host, prices),
        }
        for index, point in enumerate(p for p in run.results.get("points") or [] if isinstance(p, dict)):
            rows.append({**base, **_point_row(point, index, gpu)})
    frame = pd.DataFrame(rows, columns=POINT_COLUMNS)
    if frame.empty:
        return frame
    frame["kwh_per_1000"] = frame["energy_j_per_video"] * 1000 / 3.6e6
    frame["cost_per_1000_usd"] = frame["price_usd_per_hour"] / frame["videos_per_hour"] * 1000
    return frame


def _point_row(point: Mapping[str, Any], index: int, gpu: str | None) -> dict[str, Any]:
    config = _dict(point.get("config"))
    summary = _dict(point.get("summary"))
    telemetry = _dict(summary.get("telemetry"))
    stages = {name: _stat(summary, f"{name}_s", "median") for name in ("clip", "vae_encode", "unet", "decode")}
    e2e = _stat(summary, "e2e_s", "median")
    encode_parts = [v for v in (stages["clip"], stages["vae_encode"]) if v is not None]
    known = [v for v in stages.values() if v is not None]
    # Whatever the stage timers did not cover (image conversion, Python between stages).
    other = max(e2e - sum(known), 0.0) if e2e is not None and known else None
    unet_tflops = _num(summary.get("unet_tflops"))
    peak = _num(summary.get("peak_tflops"))
    mfu = _num(summary.get("mfu"))
    if mfu is None and unet_tflops and gpu and peak is None:
        # Runs made before the knowledge base listed their card get an MFU today.
        spec = _spec(gpu)
        dtype_peak = {"fp16": getattr(spec, "fp16_tflops", None), "bf16": getattr(spec, "bf16_tflops", None)}
        peak = _num(dtype_peak.get(str(config.get("dtype")))) if spec else None
        mfu = unet_tflops / peak if peak else None
    return {
        "workload": workload_label(config),
        "config": config_label(config),
        "point": point["point"] if isinstance(point.get("point"), int) else index,
        "status": _text(point.get("status")) or "unknown",
        "error": _text(point.get("error")),
        "frames": config.get("frames"),
        "height": config.get("height"),
        "width": config.get("width"),
        "steps": config.get("steps"),
        "decode_chunk": config.get("decode_chunk"),
        "dtype": config.get("dtype"),
        "videos_per_call": config.get("videos_per_call"),
        "compile": bool(config.get("compile")),
        "iterations": _num(summary.get("iterations")) or _num(point.get("iterations_done")) or 0,
        "videos_per_hour": _num(summary.get("videos_per_hour")),
        "e2e_p50_s": e2e,
        "e2e_p90_s": _stat(summary, "e2e_s", "p90"),
        "unet_step_p50_s": _stat(summary, "unet_step_s", "median"),
        "unet_step_p90_s": _stat(summary, "unet_step_s", "p90"),
        "unet_tflops": unet_tflops,
        "peak_tflops": peak,
        "mfu": mfu,
        "frames_per_s": _num(summary.get("frames_per_s")),
        "encode_s": sum(encode_parts) if encode_parts else None,
        "unet_s": stages["unet"],
        "decode_s": stages["decode"],
        "other_s": other,
        "peak_allocated_gib": _num(summary.get("peak_allocated_gib")),
        "peak_reserved_gib": _num(summary.get("peak_reserved_gib")),
        "energy_j_per_video": _num(summary.get("energy_j_per_video")),
        "power_w_median": _num(telemetry.get("power_w_median")),
        "power_w_max": _num(telemetry.get("power_w_max")),
        "temp_c_max": _num(telemetry.get("temp_c_max")),
        "sm_mhz_median": _num(telemetry.get("sm_mhz_median")),
        "throttled": telemetry.get("throttled") if isinstance(telemetry.get("throttled"), bool) else None,
        "power_capped": telemetry.get("power_capped") if isinstance(telemetry.get("power_capped"), bool) else None,
    }


GROUP_KEYS = ["scenario", "workload", "host", "gpu", "config"]
_MEDIAN_COLUMNS = [
    "videos_per_hour",
    "e2e_p50_s",
    "e2e_p90_s",
    "unet_step_p50_s",
    "mfu",
    "frames_per_s",
    "encode_s",
    "unet_s",
    "decode_s",
    "other_s",
    "energy_j_per_video",
    "kwh_per_1000",
    "cost_per_1000_usd",
    "power_w_median",
]
_MAX_COLUMNS = ["peak_allocated_gib", "peak_reserved_gib", "gpu_memory_gib", "price_usd_per_hour", "power_cap_w"]


def groups_frame(points: pd.DataFrame, rank_by: str = "videos_per_hour") -> pd.DataFrame:
    """Points of one host, GPU and configuration merged over runs, ranked within each scenario and workload.

    Medians across runs for speed and energy (one slow run should not decide a purchase); maxima for
    memory (the card must hold the worst run). Points that did not finish ok still count towards
    `runs` and `failed`, so a configuration that OOMs half the time shows it.
    """
    column, larger_better = RANK_COLUMNS[rank_by]
    if points.empty:
        return pd.DataFrame(columns=[*GROUP_KEYS, "runs", "failed", "reference", "rank", *_MEDIAN_COLUMNS])
    keyed = points.assign(gpu=points["gpu"].fillna("CPU"), ok=points["status"].eq("ok"))
    grouped = keyed.groupby(GROUP_KEYS, sort=False, dropna=False)
    ok = keyed[keyed["ok"]].groupby(GROUP_KEYS, sort=False, dropna=False)
    frame = grouped.agg(
        runs=("run", "nunique"),
        failed=("ok", lambda s: int((~s).sum())),
        reference=("reference", "any"),
        statuses=("status", lambda s: ", ".join(sorted(set(s)))),
        steps=("steps", "max"),
    )
    frame = frame.join(ok[_MEDIAN_COLUMNS].median()).join(keyed.groupby(GROUP_KEYS, dropna=False)[_MAX_COLUMNS].max())
    frame = frame.reset_index()
    frame["rank"] = frame.groupby(["scenario", "workload"])[column].rank(ascending=not larger_better, method="min")
    frame = frame.sort_values(["scenario", "workload", "rank", "host"], na_position="last", kind="stable").reset_index(
        drop=True
    )
    return frame


ENV_COLUMNS = [
    "host",
    "gpu",
    "gpu_count",
    "gpu_memory_gib",
    "driver",
    "cuda",
    "cudnn",
    "nccl",
    "torch",
    "diffusers",
    "transformers",
    "python",
    "os",
    "cpu",
    "weights",
    "runs",
    "reference",
    "facts_recorded",
]


def environment_frame(runs: Sequence[Run]) -> pd.DataFrame:
    """One row per host; a field that differs between that host's runs lists every value seen."""
    by_host: dict[str, list[Run]] = {}
    for run in runs:
        by_host.setdefault(run_host(run), []).append(run)
    rows = []
    for host, host_runs in by_host.items():
        rows.append({"host": host, **_environment(host_runs)})
    return pd.DataFrame(rows, columns=ENV_COLUMNS)


def _environment(runs: Sequence[Run]) -> dict[str, Any]:
    values: dict[str, list[str]] = {key: [] for key in ENV_COLUMNS[1:] if key not in ("runs", "reference")}

    def add(key: str, value: Any) -> None:
        text = _text(value)
        if text is not None and text not in values[key]:
            values[key].append(text)

    for run in reversed(runs):  # newest first: the value a host has now leads
        facts, versions = run.facts or {}, run.versions
        python = _dict(facts.get("python"))
        cuda = _dict(facts.get("cuda"))
        driver = _dict(facts.get("driver"))
        gpus = _facts_gpus(run)
        add("gpu", run_gpu(run) or (gpus[0].get("name") if gpus else None) or "none (CPU)")
        add("gpu_count", len(gpus) if run.facts is not None else None)
        capacity, source = gpu_capacity_gib(run, run_gpu(run))
        add(
            "gpu_memory_gib", None if capacity is None else f"{capacity:.1f}" + (" (spec)" if source != "facts" else "")
        )
        add("driver", versions.get("driver") or driver.get("userspace_version"))
        torch_cuda = versions.get("torch_cuda") or python.get("torch_cuda")
        toolkit = cuda.get("toolkit_version")
        add("cuda", _joined(torch_cuda and f"torch {torch_cuda}", toolkit and f"toolkit {toolkit}"))
        add(
            "cudnn",
            _joined(
                _cudnn_text(versions.get("cudnn")) or (python.get("torch_cudnn") and f"torch {python['torch_cudnn']}"),
                cuda.get("cudnn_version") and f"system {cuda['cudnn_version']}",
            ),
        )
        add(
            "nccl",
            _joined(
                python.get("torch_nccl") and f"torch {python['torch_nccl']}",
                cuda.get("nccl_version") and f"system {cuda['nccl_version']}",
            ),
        )
        add("torch", versions.get("torch") or python.get("torch_version"))
        add("diffusers", versions.get("diffusers") or python.get("diffusers_version"))
        add("transformers", versions.get("transformers") or python.get("transformers_version"))
        add("python", versions.get("python") or python.get("python_version"))
        add("os", _dict(facts.get("os")).get("pretty_name"))
        cpu = _dict(facts.get("cpu"))
        add(
            "cpu",
            cpu.get("model_name")
            and f"{cpu['model_name']}" + (f" ({cpu['logical_cpus']} CPUs)" if cpu.get("logical_cpus") else ""),
        )
        add("weights", weights_text(run))
        add("facts_recorded", "yes" if run.facts is not None else "no")
    row: dict[str, Any] = {key: " / ".join(v) if v else None for key, v in values.items()}
    row["weights"] = values["weights"]  # a list: the template shows one per line
    row["runs"] = len(runs)
    row["reference"] = any(is_reference(r) for r in runs)
    return row


def _joined(*parts: Any) -> str | None:
    kept = [str(p) for p in parts if p]
    return ", ".join(kept) or None


def _cudnn_text(value: Any) -> str | None:
    """torch reports cuDNN as an integer: 91900 is 9.19.0 (cuDNN 9+), 8902 is 8.9.2 (cuDNN 8)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1000:
        major, rest = divmod(value, 10000 if value >= 10000 else 1000)
        minor, patch = divmod(rest, 100)
        return f"torch {major}.{minor}.{patch}"
    return f"torch {value}" if value else None


# --- check findings ------------------------------------------------------------------------------------


FINDING_COLUMNS = ["host", "profile", "source", "status", "id", "title", "expected", "actual", "hint"]


@dataclass
class CheckSet:
    findings: pd.DataFrame
    hosts: list[dict[str, Any]]  # host, profile, source, summary counts, failed, reachable, message


def load_checks(paths: Sequence[Path]) -> CheckSet:
    """`svdops check --format json` files (one host) and fleet check files (many hosts)."""
    rows: list[dict[str, Any]] = []
    hosts: list[dict[str, Any]] = []
    for path in paths:
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise BadInputError(
                "check file not found", where=str(path), hint="write one with `svdops check --format json -o FILE`"
            ) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadInputError(f"cannot read check file: {exc}", where=str(path)) from exc
        schema = doc.get("schema") if isinstance(doc, dict) else None
        if schema == CHECK_SCHEMA:
            _add_check(doc, str(path), rows, hosts)
        elif schema == FLEET_CHECK_SCHEMA:
            for entry in doc.get("hosts") or []:
                if isinstance(_dict(entry).get("check"), dict):
                    _add_check(entry["check"], str(path), rows, hosts)
                elif isinstance(entry, dict):
                    hosts.append(
                        {
                            "host": str(entry.get("name") or "?"),
                            "profile": doc.get("profile"),
                            "source": str(path),
                            "summary": {},
                            "failed": None,
                            "reachable": False,
                            "message": _joined(entry.get("status"), entry.get("message")),
                        }
                    )
        else:
            raise BadInputError(
                f"not an svdops check result (schema {schema!r})",
                where=str(path),
                hint=f"expected {CHECK_SCHEMA} from `svdops check --format json` or {FLEET_CHECK_SCHEMA}",
            )
    return CheckSet(pd.DataFrame(rows, columns=FINDING_COLUMNS), hosts)


def _add_check(doc: Mapping[str, Any], source: str, rows: list[dict[str, Any]], hosts: list[dict[str, Any]]) -> None:
    host = str(doc.get("host") or "?")
    summary = {k: int(v) for k, v in _dict(doc.get("summary")).items() if isinstance(v, int)}
    hosts.append(
        {
            "host": host,
            "profile": _text(doc.get("profile")),
            "source": source,
            "summary": summary,
            "failed": bool(doc.get("failed")),
            "reachable": True,
            "message": None,
        }
    )
    for finding in doc.get("findings") or []:
        f = _dict(finding)
        rows.append(
            {
                "host": host,
                "profile": _text(doc.get("profile")),
                "source": source,
                **{k: _text(f.get(k)) for k in FINDING_COLUMNS[3:]},
            }
        )


# --- scaling and NCCL (multi-GPU run kinds) -------------------------------------------------------------


SCALING_COLUMNS = [
    "host",
    "run",
    "gpu",
    "workload",
    "world_size",
    "throughput",
    "unit",
    "baseline",
    "speedup",
    "efficiency",
]


def scaling_frame(runs: Sequence[Run]) -> pd.DataFrame:
    """One row per multi-GPU run (results.json `scaling`): throughput at its world size, and the
    single-GPU baseline it is compared with. A list of such entries is accepted too."""
    rows = []
    for run in runs:
        entries = run.results.get("scaling")
        for entry in [entries] if isinstance(entries, dict) else entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict):
                continue
            throughput = entry.get("throughput")
            baseline = _dict(entry.get("baseline"))
            unit = _dict(throughput).get("unit") or ("videos/hour" if "videos_per_hour" in entry else None)
            base_key = "samples_per_s" if unit == "samples/s" else "videos_per_hour"
            rows.append(
                {
                    "host": run_host(run),
                    "run": run.name,
                    "gpu": run_gpu(run),
                    "workload": _text(entry.get("workload") or run.results.get("workload")),
                    "world_size": _num(entry.get("world_size") or entry.get("gpus") or run.results.get("world_size")),
                    "throughput": _num(_dict(throughput).get("value"))
                    if isinstance(throughput, dict)
                    else _num(throughput if throughput is not None else entry.get("videos_per_hour")),
                    "unit": unit,
                    "baseline": _num(baseline.get(base_key)),
                    "speedup": _num(entry.get("speedup")),
                    "efficiency": _num(entry.get("efficiency")),
                }
            )
    return pd.DataFrame(rows, columns=SCALING_COLUMNS)


def nccl_frame(runs: Sequence[Run]) -> pd.DataFrame:
    """The all-reduce sweep rows of every run (results.json `nccl`), with host, run and world size."""
    rows = []
    for run in runs:
        entries = run.results.get("nccl")
        if not isinstance(entries, list):
            continue
        world = _num(run.results.get("world_size"))
        for entry in entries:
            if isinstance(entry, dict):
                rows.append(
                    {
                        "host": run_host(run),
                        "run": run.name,
                        "world_size": world,
                        **{str(k): v for k, v in entry.items()},
                    }
                )
    return pd.DataFrame(rows)


# --- telemetry -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TelemetrySeries:
    run: str
    host: str
    gpu: str | None
    samples: pd.DataFrame  # t_s (from the first sample), temp_c, power_w, power_limit_w, sm_mhz, clocks_event_mask
    marks: pd.DataFrame  # t_s, label, point, iteration
    summary: dict[str, Any]
    note: str | None = None


def telemetry_samples(run: Run) -> int:
    """How many NVML samples results.json says the run has (multi-GPU runs count per rank)."""
    telemetry = _dict(run.results.get("telemetry"))
    count = _num(_dict(telemetry.get("summary")).get("samples")) or 0
    for rank in _dict(telemetry.get("per_rank")).values():
        count += _num(_dict(rank).get("samples")) or 0
    return int(count)


def read_telemetry(run: Run) -> TelemetrySeries | None:
    """The run's NVML samples and stage marks on one time axis, or None when it has no samples."""
    path = run.path / "telemetry.csv"
    if not path.is_file():
        return None
    try:
        samples = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError):
        return None
    if samples.empty:
        return None
    note = None
    if "rank" in samples and samples["rank"].nunique() > 1:
        # Multi-GPU runs interleave every rank's GPU in one file; one trace per chart stays readable.
        note = f"the GPU of rank 0 of {samples['rank'].nunique()} ranks"
        samples = samples[samples["rank"] == samples["rank"].min()]
    # Marks were taken with time.monotonic() in the benchmark process, like t_mono; prefer it.
    clock = "t_mono" if "t_mono" in samples and samples["t_mono"].notna().all() else "t_unix"
    if clock not in samples:
        return None
    samples = samples.sort_values(clock)
    t0 = float(samples[clock].iloc[0])
    samples = samples.assign(t_s=samples[clock] - t0)
    marks = pd.DataFrame(columns=["t_s", "label", "point", "iteration"])
    marks_path = run.path / "marks.csv"
    if marks_path.is_file():
        try:
            raw = pd.read_csv(marks_path)
        except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError):
            raw = pd.DataFrame()
        if not raw.empty and clock in raw and "label" in raw:
            if "rank" in raw:
                raw = raw[raw["rank"] == raw["rank"].min()]
            marks = raw.assign(t_s=raw[clock] - t0)
    return TelemetrySeries(
        run=run.name,
        host=run_host(run),
        gpu=run_gpu(run),
        samples=samples,
        marks=marks,
        summary=_dict(_dict(run.results.get("telemetry")).get("summary")),
        note=note,
    )


def pick_telemetry_runs(runs: Sequence[Run], limit: int) -> tuple[list[Run], int]:
    """The newest run with samples from each host first, then newer ones, up to `limit`.

    Telemetry charts are the heaviest part of a report; with hundreds of runs a reader wants one
    representative trace per machine, not a wall of them. Returns (picked, how many had samples).
    """
    with_samples = [r for r in runs if telemetry_samples(r) > 0]
    newest_first = sorted(with_samples, key=lambda r: run_started(r) or datetime.min.replace(tzinfo=UTC), reverse=True)
    picked: list[Run] = []
    hosts: set[str] = set()
    for run in newest_first:
        if run_host(run) not in hosts:
            hosts.add(run_host(run))
            picked.append(run)
    # By name: Run is a dataclass whose == compares every parsed JSON document.
    taken = {run.name for run in picked}
    picked += [run for run in newest_first if run.name not in taken]
    picked = picked[:limit]
    picked.sort(key=lambda r: (run_host(r), run_started(r) or datetime.min.replace(tzinfo=UTC)))
    return picked, len(with_samples)
