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

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from svdops.report.run_fields import (
    as_count,
    as_dict,
    as_number,
    as_text,
    facts_gpus,
    gpu_capacity_gib,
    gpu_spec,
    is_reference,
    joined_text,
    power_cap_w,
    run_finished,
    run_gpu,
    run_host,
    run_scenario,
    run_started,
)
from svdops.report.scaling import nccl_rows, scaling_rows
from svdops.report.selection import Prices
from svdops.report.telemetry_series import telemetry_samples
from svdops.runs.documents import PointDoc, TelemetrySummary
from svdops.runs.store import Run

# metric -> (column in the groups frame, larger is better)
RANK_COLUMNS: dict[str, tuple[str, bool]] = {
    "videos_per_hour": ("videos_per_hour", True),
    "cost": ("cost_per_1000_usd", False),
    "energy": ("energy_j_per_video", False),
}


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
    return pd.DataFrame([_run_row(run) for run in runs], columns=RUN_COLUMNS)


def _run_row(run: Run) -> dict[str, Any]:
    started, finished = run_started(run), run_finished(run)
    gpu = run_gpu(run)
    capacity, capacity_source = gpu_capacity_gib(run, gpu)
    points = run.results.points
    errors = [p.error for p in points if p.error]
    return {
        "run": run.name,
        "path": str(run.path),
        "host": run_host(run),
        "scenario": run_scenario(run),
        "status": run.status,
        "started_at": started,
        "duration_s": (finished - started).total_seconds() if started and finished else None,
        "device": as_text(run.results.device),
        "gpu": gpu,
        "gpu_memory_gib": capacity,
        "gpu_memory_source": capacity_source,
        "power_cap_w": power_cap_w(run),
        "weights": weights_text(run),
        "provenance": as_text(run.results.provenance),
        "reference": is_reference(run),
        "points": len(points),
        "telemetry_samples": telemetry_samples(run),
        "facts_recorded": run.facts is not None,
        # What reading found malformed is shown with the run: a blank cell should have a reason.
        "notes": [*(n for n in run.results.notes if n), *run.read_notes],
        "errors": errors,
    }


def check_tabulates(run: Run, prices: Prices | None = None) -> None:
    """Build every row this run adds to the report's frames, and drop them: the report passes this to
    `find_runs` so that a run its rows cannot be built from is skipped with a note, on its own."""
    _run_row(run)
    _point_rows(run, prices or Prices())
    _environment([run])
    scaling_rows(run)
    nccl_rows(run)


def weights_text(run: Run) -> str | None:
    weights = run.results.weights or run.config.weights
    return as_text(weights.text()) if weights else None


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


def optimize_label(config: Mapping[str, Any]) -> str | None:
    """`optimize max max-autotune` from a point's own configuration: its --optimize level and, when anything
    was compiled, a compile mode other than the default. None for a reference point (or one from before
    --optimize). Short text values only: the configuration is free-form JSON."""

    def text(key: str) -> str | None:
        value = config.get(key)
        return value[:40] if isinstance(value, str) and value else None

    level, mode = text("optimize"), text("compile_mode")
    optimized = level not in (None, "none")
    parts = [f"optimize {level}"] if optimized else []
    if (config.get("compile") is True or optimized) and mode not in (None, "default"):
        parts.append(str(mode))
    return " ".join(parts) or None


def config_label(config: Mapping[str, Any], compiled: object = None, optimize: str | None = None) -> str:
    """`25f 576x1024 25 steps chunk 8 fp16` plus whatever departs from the defaults, `optimize` (see
    `optimize_label`) too, so optimized points never group with reference ones. `compiled` is what Dynamo
    did at the point (summary.compile.compiled): False turns a requested `compiled` into `ran eager`."""
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
    if optimize:
        parts.append(optimize)
    for flag, word in (("compile", "compiled"), ("cpu_offload", "offload"), ("forward_chunking", "ff-chunks")):
        if config.get(flag):
            parts.append("ran eager" if flag == "compile" and compiled is False else word)
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


def points_frame(runs: Sequence[Run], prices: Prices | None = None) -> pd.DataFrame:
    """One row per configuration point: the merged table. Missing figures are NaN, never an error."""
    prices = prices or Prices()
    rows = [row for run in runs for row in _point_rows(run, prices)]
    frame = pd.DataFrame(rows, columns=POINT_COLUMNS)
    if frame.empty:
        return frame
    frame["kwh_per_1000"] = frame["energy_j_per_video"] * 1000 / 3.6e6
    frame["cost_per_1000_usd"] = frame["price_usd_per_hour"] / frame["videos_per_hour"] * 1000
    return frame


_COUNT_KEYS = ("frames", "height", "width", "steps", "decode_chunk", "videos_per_call")
_FLAG_KEYS = ("compile", "cpu_offload", "forward_chunking")
MAX_LABEL_CHARS = 40


def clean_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A point's free-form configuration reduced to the keys the report reads, each of its kind:
    counts as ints, the dtype as short text, flags as booleans; anything else is left out, so a list
    where a number belongs (or a string of a million digits) never reaches a label or a median."""
    clean: dict[str, Any] = {key: as_count(config.get(key)) for key in _COUNT_KEYS}
    dtype = as_text(config.get("dtype"))
    clean["dtype"] = dtype[:MAX_LABEL_CHARS] if dtype else None
    for key in _FLAG_KEYS:
        value = config.get(key)
        clean[key] = value if isinstance(value, bool) else None
    return clean


def _point_rows(run: Run, prices: Prices) -> list[dict[str, Any]]:
    if not run.results.points:
        return []
    host, gpu = run_host(run), run_gpu(run)
    capacity, _ = gpu_capacity_gib(run, gpu)
    base = {
        "host": host,
        "gpu": gpu,
        "scenario": run_scenario(run),
        "run": run.name,
        "started_at": run_started(run),
        "reference": is_reference(run),
        "device": as_text(run.results.device),
        "gpu_memory_gib": capacity,
        "power_cap_w": power_cap_w(run),
        "weights": weights_text(run),
        # a single-GPU bench point holds one GPU for its hour (multi-GPU runs have no points)
        "price_usd_per_hour": prices.hourly(host, gpu, gpu_count=1),
    }
    return [{**base, **_point_row(point, index, gpu)} for index, point in enumerate(run.results.points)]


def _point_row(point: PointDoc, index: int, gpu: str | None) -> dict[str, Any]:
    config = clean_config(point.config)
    summary = point.summary
    telemetry = summary.telemetry or TelemetrySummary()
    stages = {name: as_number(summary.median(name)) for name in ("clip", "vae_encode", "unet", "decode")}
    e2e = as_number(summary.median("e2e"))
    encode_parts = [v for v in (stages["clip"], stages["vae_encode"]) if v is not None]
    known = [v for v in stages.values() if v is not None]
    # Whatever the stage timers did not cover (image conversion, Python between stages).
    other = max(e2e - sum(known), 0.0) if e2e is not None and known else None
    unet_tflops = as_number(summary.unet_tflops)
    peak = as_number(summary.peak_tflops)
    mfu = as_number(summary.mfu)
    if mfu is None and unet_tflops and gpu and peak is None:
        # Runs made before the knowledge base listed their card get an MFU today.
        spec = gpu_spec(gpu)
        dtype_peak = {"fp16": getattr(spec, "fp16_tflops", None), "bf16": getattr(spec, "bf16_tflops", None)}
        peak = as_number(dtype_peak.get(str(config.get("dtype")))) if spec else None
        mfu = unet_tflops / peak if peak else None
    return {
        "workload": workload_label(config),
        "config": config_label(config, (summary.compile or {}).get("compiled"), optimize_label(point.config)),
        "point": as_count(point.point) if as_count(point.point) is not None else index,
        "status": as_text(point.status) or "unknown",
        "error": as_text(point.error),
        "frames": config.get("frames"),
        "height": config.get("height"),
        "width": config.get("width"),
        "steps": config.get("steps"),
        "decode_chunk": config.get("decode_chunk"),
        "dtype": config.get("dtype"),
        "videos_per_call": config.get("videos_per_call"),
        "compile": bool(config.get("compile")),
        "iterations": as_number(summary.iterations) or as_number(point.iterations_done) or 0,
        "videos_per_hour": as_number(summary.videos_per_hour),
        "e2e_p50_s": e2e,
        "e2e_p90_s": as_number(summary.e2e_s.p90) if summary.e2e_s else None,
        "unet_step_p50_s": as_number(summary.median("unet_step")),
        "unet_step_p90_s": as_number(summary.unet_step_s.p90) if summary.unet_step_s else None,
        "unet_tflops": unet_tflops,
        "peak_tflops": peak,
        "mfu": mfu,
        "frames_per_s": as_number(summary.frames_per_s),
        "encode_s": sum(encode_parts) if encode_parts else None,
        "unet_s": stages["unet"],
        "decode_s": stages["decode"],
        "other_s": other,
        "peak_allocated_gib": as_number(summary.peak_allocated_gib),
        "peak_reserved_gib": as_number(summary.peak_reserved_gib),
        "energy_j_per_video": as_number(summary.energy_j_per_video),
        "power_w_median": as_number(telemetry.power_w_median),
        "power_w_max": as_number(telemetry.power_w_max),
        "temp_c_max": as_number(telemetry.temp_c_max),
        "sm_mhz_median": as_number(telemetry.sm_mhz_median),
        "throttled": telemetry.throttled,
        "power_capped": telemetry.power_capped,
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
        text = as_text(value)
        if text is not None and text not in values[key]:
            values[key].append(text)

    for run in reversed(runs):  # newest first: the value a host has now leads
        facts, versions = run.facts or {}, run.versions
        # Facts are free-form JSON: every value read below is a scalar's text or None, never a list
        # whose str() could be megabytes long or recurse.
        python = _texts(facts.get("python"))
        cuda = _texts(facts.get("cuda"))
        driver = _texts(facts.get("driver"))
        gpus = facts_gpus(run)
        add("gpu", run_gpu(run) or (gpus[0].get("name") if gpus else None) or "none (CPU)")
        add("gpu_count", len(gpus) if run.facts is not None else None)
        capacity, source = gpu_capacity_gib(run, run_gpu(run))
        add(
            "gpu_memory_gib", None if capacity is None else f"{capacity:.1f}" + (" (spec)" if source != "facts" else "")
        )
        add("driver", versions.driver or driver.get("userspace_version"))
        torch_cuda = versions.torch_cuda or python.get("torch_cuda")
        toolkit = cuda.get("toolkit_version")
        add("cuda", joined_text(torch_cuda and f"torch {torch_cuda}", toolkit and f"toolkit {toolkit}"))
        add(
            "cudnn",
            joined_text(
                _cudnn_text(versions.cudnn) or (python.get("torch_cudnn") and f"torch {python['torch_cudnn']}"),
                cuda.get("cudnn_version") and f"system {cuda['cudnn_version']}",
            ),
        )
        add(
            "nccl",
            joined_text(
                python.get("torch_nccl") and f"torch {python['torch_nccl']}",
                cuda.get("nccl_version") and f"system {cuda['nccl_version']}",
            ),
        )
        add("torch", versions.torch or python.get("torch_version"))
        add("diffusers", versions.diffusers or python.get("diffusers_version"))
        add("transformers", versions.transformers or python.get("transformers_version"))
        add("python", versions.python or python.get("python_version"))
        add("os", _texts(facts.get("os")).get("pretty_name"))
        cpu = _texts(facts.get("cpu"))
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


def _texts(value: Any) -> dict[str, str]:
    """An object of the facts with its scalar values as text (lists and objects left out)."""
    return {str(k): text for k, v in as_dict(value).items() if (text := as_text(v)) is not None}


def _cudnn_text(value: Any) -> str | None:
    """torch reports cuDNN as an integer: 91900 is 9.19.0 (cuDNN 9+), 8902 is 8.9.2 (cuDNN 8)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1000:
        major, rest = divmod(value, 10000 if value >= 10000 else 1000)
        minor, patch = divmod(rest, 100)
        return f"torch {major}.{minor}.{patch}"
    return f"torch {value}" if value else None
