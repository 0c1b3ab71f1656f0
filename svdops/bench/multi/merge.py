"""Every rank's log and telemetry -> one run folder, with the cross-rank figures computed here.

Pure Python (no torch): the ranks record what they measured; the scaling arithmetic lives in one
place and is unit-tested on hand-written rank logs. The folder holds the single-GPU run files
(results.json keeps `status`, `scenario`, `device`, `gpu`, `weights` and an empty `points` so
readers of single-GPU runs skip it cleanly) plus:

    results.json   `scaling` {workload, world_size, per_rank, efficiency, baseline, throughput}
                   and/or `nccl` [{size_bytes, algbw_gbps, busbw_gbps, expected_busbw_gbps}],
                   `topology`, `ranks`, `failure`
    iterations.csv one row per call or training step, per rank (column `rank`, `phase`)
    nccl.csv       the all-reduce sweep (nccl workload)
    telemetry.csv  NVML samples of every rank's GPU (columns `rank`, `gpu` first)
    marks.csv      stage marks per rank
    torchrun.log   torchrun's and the ranks' output
"""

from __future__ import annotations

import dataclasses
import json
import re
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from svdops.bench.multi import MultiRequest
from svdops.bench.stats import describe
from svdops.runs.documents import (
    RESULTS_SCHEMA,
    Config,
    Failure,
    NcclRow,
    Results,
    ScalingEntry,
    TelemetryRecord,
    TelemetrySummary,
    Versions,
    WeightsRecord,
)
from svdops.runs.store import RunWriter
from svdops.telemetry import MARK_COLUMNS, TELEMETRY_COLUMNS, TelemetrySample, summarize

ITERATION_COLUMNS = (
    "rank",
    "phase",
    "iteration",
    "warmup",
    "t_start_unix",
    "seconds",
    "items",
    "clip_s",
    "vae_encode_s",
    "unet_s",
    "unet_step_median_s",
    "decode_s",
    "loss",
)
NCCL_COLUMNS = ("size_bytes", "iterations", "time_s", "algbw_gbps", "busbw_gbps", "expected_busbw_gbps")
MULTI_TELEMETRY_COLUMNS = ("rank", "gpu", *TELEMETRY_COLUMNS)
MULTI_MARK_COLUMNS = ("rank", *MARK_COLUMNS)
LOG_TAIL_CHARS = 4000


@dataclass
class MultiOutcome:
    path: Path
    status: str  # ok | oom | failed | interrupted
    results: Results

    @property
    def failure(self) -> Failure | None:
        return self.results.failure


def read_rank_logs(staging: Path) -> dict[int, dict[str, Any]]:
    docs: dict[int, dict[str, Any]] = {}
    for path in staging.glob("rank-*.json"):
        match = re.fullmatch(r"rank-(\d+)\.json", path.name)
        if not match:
            continue
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue  # the rename makes a torn file impossible; an unreadable one is as good as absent
        if isinstance(doc, dict):
            docs[int(match.group(1))] = doc
    return docs


# --- cross-rank figures --------------------------------------------------------------------------


def _rows(doc: dict[str, Any], phase: str) -> list[dict[str, Any]]:
    return [r for r in doc.get("records", []) if r.get("phase") == phase and not r.get("warmup")]


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator is not None and denominator else None


def scaling_entry(workload: str, world_size: int, docs: dict[int, dict[str, Any]]) -> ScalingEntry | None:
    """The `scaling` entry of results.json; None for the nccl sweep (it has `nccl`)."""
    builders = {"infer-dp": _scaling_infer_dp, "infer-cfg": _scaling_infer_cfg, "train-ddp": _scaling_train}
    build = builders.get(workload)
    return None if build is None else ScalingEntry.checked(build(world_size, docs), f"scaling ({workload})")


def _rank_identity(rank: int, doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "rank": rank,
        "host": doc.get("host"),
        "gpu": doc.get("gpu_index"),
        "device": doc.get("device"),
        "status": doc.get("status", "missing"),
    }


def _baseline(docs: dict[int, dict[str, Any]], world_size: int) -> tuple[list[dict[str, Any]], str]:
    """Rank 0's solo rows (its phase alone), or its parallel rows when it ran alone anyway."""
    first = docs.get(0, {})
    solo = _rows(first, "solo")
    if solo:
        return solo, "rank 0 alone, before the parallel phase"
    if world_size == 1:
        return _rows(first, "parallel"), "the only rank"
    return [], "rank 0's solo phase did not finish"


def _scaling_infer_dp(world_size: int, docs: dict[int, dict[str, Any]]) -> dict[str, Any]:
    per_rank = []
    walls, videos = [], 0
    for rank in range(world_size):
        doc = docs.get(rank, {})
        rows, result = _rows(doc, "parallel"), doc.get("result", {})
        wall, made = result.get("parallel_wall_s"), result.get("videos")
        if wall is not None and made is not None:
            walls.append(wall)
            videos += made
        per_rank.append(
            {
                **_rank_identity(rank, doc),
                "videos": sum(r["items"] for r in rows),
                "e2e_s": describe([r["seconds"] for r in rows]),
                "unet_step_s": _median([r["unet_step_median_s"] for r in rows if r["unet_step_median_s"]]),
                "videos_per_hour": _ratio(3600.0 * result["videos"], wall) if wall and made is not None else None,
                "parallel_wall_s": wall,
            }
        )
    base_rows, source = _baseline(docs, world_size)
    base_e2e = _median([r["seconds"] for r in base_rows])
    base_vph = _ratio(3600.0 * base_rows[0]["items"], base_e2e) if base_rows else None
    complete = len(walls) == world_size
    total_vph = _ratio(3600.0 * videos, max(walls)) if complete else None
    return {
        "workload": "infer-dp",
        "world_size": world_size,
        "per_rank": per_rank,
        "baseline": {"source": source, "e2e_s": base_e2e, "videos_per_hour": base_vph},
        "throughput": {
            "value": total_vph,
            "unit": "videos/hour",
            "videos": videos if complete else None,
            "wall_s": max(walls) if complete else None,
        },
        "speedup": _ratio(total_vph, base_vph),
        "efficiency": _ratio(total_vph, world_size * base_vph if base_vph else None),
    }


def _scaling_infer_cfg(world_size: int, docs: dict[int, dict[str, Any]]) -> dict[str, Any]:
    per_rank = []
    latencies: list[float] = []
    for rank in range(world_size):
        doc = docs.get(rank, {})
        rows, result = _rows(doc, "parallel"), doc.get("result", {})
        e2e = [r["seconds"] for r in rows]
        if result.get("role", "").startswith("uncond"):
            latencies += e2e  # the decoding rank's end to end is the pair's latency per video
        per_rank.append(
            {
                **_rank_identity(rank, doc),
                "pair": result.get("pair"),
                "role": result.get("role"),
                "e2e_s": describe(e2e),
                "unet_step_s": _median([r["unet_step_median_s"] for r in rows if r["unet_step_median_s"]]),
            }
        )
    base_rows, source = _baseline(docs, world_size)
    base_e2e = _median([r["seconds"] for r in base_rows])
    base_step = _median([r["unet_step_median_s"] for r in base_rows if r["unet_step_median_s"]])
    latency = _median(latencies)
    pairs = world_size // 2
    per_call = docs.get(0, {}).get("result", {}).get("videos_per_call", 1)
    speedup = _ratio(base_e2e, latency)
    return {
        "workload": "infer-cfg",
        "world_size": world_size,
        "per_rank": per_rank,
        "baseline": {
            "source": source,
            "e2e_s": base_e2e,
            "unet_step_s": base_step,
            "videos_per_hour": _ratio(3600.0 * per_call, base_e2e),
        },
        "latency_s": latency,
        "throughput": {"value": _ratio(3600.0 * per_call * pairs, latency), "unit": "videos/hour", "pairs": pairs},
        "speedup": speedup,
        # Two GPUs per video: a perfect split halves the latency, so efficiency is speedup / 2.
        "efficiency": None if speedup is None else speedup / 2,
        "check": docs.get(0, {}).get("result", {}).get("check"),
    }


def _scaling_train(world_size: int, docs: dict[int, dict[str, Any]]) -> dict[str, Any]:
    per_rank = []
    medians: list[float] = []
    batch = docs.get(0, {}).get("result", {}).get("batch_per_rank")
    for rank in range(world_size):
        doc = docs.get(rank, {})
        rows = _rows(doc, "parallel")
        steps = [r["seconds"] for r in rows]
        step = _median(steps)
        if step:
            medians.append(step)
        per_rank.append(
            {
                **_rank_identity(rank, doc),
                "step_s": describe(steps),
                "samples_per_s": _ratio(doc.get("result", {}).get("batch_per_rank"), step),
                "final_loss": rows[-1].get("loss") if rows else None,
            }
        )
    base_rows, source = _baseline(docs, world_size)
    base_step = _median([r["seconds"] for r in base_rows])
    base_sps = _ratio(batch, base_step)
    # DDP steps in lockstep: the slowest rank's step is everyone's.
    total = _ratio(world_size * batch, max(medians)) if batch and len(medians) == world_size else None
    result0 = docs.get(0, {}).get("result", {})
    return {
        "workload": "train-ddp",
        "world_size": world_size,
        "per_rank": per_rank,
        "baseline": {"source": source, "step_s": base_step, "samples_per_s": base_sps},
        "throughput": {"value": total, "unit": "samples/s", "batch_per_rank": batch},
        "speedup": _ratio(total, base_sps),
        "efficiency": _ratio(total, world_size * base_sps if base_sps else None),
        "gradient_bytes": result0.get("gradient_bytes"),
        "gradient_checkpointing": result0.get("gradient_checkpointing"),
        "autocast": result0.get("autocast"),
        "optimizer": result0.get("optimizer"),
    }


def nccl_entries(docs: dict[int, dict[str, Any]]) -> list[NcclRow]:
    """Rank 0's rows: the time in every row is already the slowest rank's."""
    for rank in sorted(docs):
        rows = docs[rank].get("result", {}).get("nccl")
        if rows:
            return [NcclRow.checked(row, f"rank {rank} nccl row") for row in rows]
    return []


# --- failure -------------------------------------------------------------------------------------


def find_failure(
    docs: dict[int, dict[str, Any]], world_size: int, launch: Any, expected: list[int] | None = None
) -> Failure | None:
    """The rank that brought the run down and its error, or None when every rank finished.

    Order of evidence: the watchdog's stalled ranks; a rank that died without a Python exception
    (a signal, the OOM killer: its log still says running); a rank that raised (the earliest);
    then torchrun's root cause. Ranks stopped because a peer died come last: they are symptoms.
    `expected`: the ranks this host can know about (all of them, unless it is a host without rank 0).
    """
    found = _find_failure(docs, world_size, launch, expected)
    return None if found is None else Failure.checked(found, "failure")


def _find_failure(
    docs: dict[int, dict[str, Any]], world_size: int, launch: Any, expected: list[int] | None
) -> dict[str, Any] | None:
    ranks = range(world_size) if expected is None else expected
    statuses = {r: docs.get(r, {}).get("status", "missing") for r in ranks}
    if all(s == "ok" for s in statuses.values()) and not launch.stalled and launch.returncode == 0:
        return None
    causes = launch.root_causes
    if launch.stalled:
        suspects = launch.stalled["suspects"] or sorted(statuses)
        first = suspects[0]
        activity = launch.stalled["activities"].get(str(first), {}).get("activity", "never reported")
        return {
            "rank": first,
            "ranks": suspects,
            "how": "stalled",
            "error": f"no progress from any rank for {launch.stalled['idle_s']:.0f} s (--rank-timeout); "
            f"rank {first} was at: {activity}",
        }
    if launch.interrupted:
        return {"rank": None, "ranks": [], "how": "interrupted", "error": "interrupted (Ctrl-C or SIGTERM)"}
    died = [r for r, s in statuses.items() if s in ("running", "starting", "missing") and r in causes]
    if not died:
        died = [r for r, s in statuses.items() if s in ("running", "starting") and launch.returncode != 0]
    if died:
        died.sort(key=lambda r: (not causes.get(r, {}).get("root_cause", False), r))
        rank = died[0]
        return {"rank": rank, "ranks": died, "how": "died", "error": _death(causes.get(rank))}
    failed = sorted((docs[r].get("failed_unix", 0.0), r) for r, s in statuses.items() if s in ("failed", "oom"))
    if failed:
        rank = failed[0][1]
        how = "oom" if statuses[rank] == "oom" else "exception"
        return {"rank": rank, "ranks": [r for _, r in failed], "how": how, "error": docs[rank].get("error")}
    root = next((r for r, c in causes.items() if c.get("root_cause")), None)
    if root is not None:
        return {"rank": root, "ranks": [root], "how": "died", "error": _death(causes[root])}
    missing = [r for r, s in statuses.items() if s == "missing"]
    if missing:
        error = f"torchrun exited with code {launch.returncode} before rank(s) {', '.join(map(str, missing))} reported"
    else:
        error = f"torchrun exited with code {launch.returncode} after the ranks finished (see torchrun.log)"
    return {"rank": missing[0] if missing else None, "ranks": missing, "how": "missing", "error": error}


def _death(cause: dict[str, Any] | None) -> str:
    if not cause:
        return "the process ended without an error of its own (killed?)"
    code = cause["exitcode"]
    if code < 0:
        import signal

        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name} (pid {cause['pid']})"
    return f"exited with code {code} (pid {cause['pid']}): {cause.get('message') or 'no message'}"


# --- the run folder ------------------------------------------------------------------------------


def write_run(
    *,
    staging: Path,
    request: MultiRequest,
    plan: Any,
    links: Any,
    facts: Any,
    facts_note: str | None,
    launch: Any,
    started: datetime,
    name: str,
    command: list[str],
) -> MultiOutcome:
    docs = read_rank_logs(staging)
    world = plan.world_size
    # A host without rank 0 sees only its own ranks (rank 0's host gathers everyone's logs).
    expected = sorted(docs) if plan.nnodes > 1 and 0 not in docs and docs else None
    failure = find_failure(docs, world, launch, expected)
    if launch.interrupted:
        status = "interrupted"
    elif failure is None:
        status = "ok"
    elif failure.how == "oom":
        status = "oom"  # as a single-GPU point that ran out of memory: the configuration, not a fault
    else:
        status = "failed"
    notes = [n for n in (facts_note,) if n]
    notes += list(links.warnings) + list(links.notes)
    missing_local = [r for r in range(world) if r not in docs]
    if plan.nnodes > 1 and missing_local:
        notes.append(
            f"rank(s) {missing_local} ran on other hosts and did not reach this one; "
            "the run folder on the host of rank 0 has every rank"
        )
    first = docs.get(0) or next(iter(docs.values()), {})
    scaling = scaling_entry(plan.workload, world, docs)
    nccl = nccl_entries(docs) if plan.workload == "nccl" else None
    ranks_doc = [_rank_doc(r, docs.get(r, {})) for r in range(world)]
    telemetry_by_rank = {r: _samples(docs.get(r, {})) for r in range(world)}
    results = Results(
        schema=RESULTS_SCHEMA,
        kind="multi",
        status=status,
        scenario=request.bench.scenario,
        workload=plan.workload,
        device=plan.device,
        backend=plan.backend,
        gpu=first.get("gpu_name"),
        world_size=world,
        nnodes=plan.nnodes,
        nproc_per_node=plan.nproc_per_node,
        # A rank log is this svdops's own file, but one a killed rank may have left half-filled.
        weights=WeightsRecord.from_json(first.get("weights"), "rank weights", notes),
        started_at=started.isoformat(),
        finished_at=datetime.now(UTC).isoformat(),
        wall_s=round(launch.wall_s, 3),
        points=[],
        scaling=scaling,
        nccl=nccl,
        topology=links.to_dict(),
        ranks=ranks_doc,
        failure=failure,
        telemetry=TelemetryRecord(
            enabled=request.bench.telemetry and plan.device == "cuda",
            hz=request.bench.telemetry_hz,
            per_rank={
                str(r): TelemetrySummary.checked(summarize(samples), f"rank {r} telemetry")
                for r, samples in telemetry_by_rank.items()
            },
        ),
        notes=notes,
    )
    if first.get("weights") is None:
        results.weights = None
    config = Config(
        request=dataclasses.asdict(request),
        plan=dataclasses.asdict(plan),
        command=list(command),
        point=first.get("config"),
    )
    versions = first.get("versions") or docs.get(0, {}).get("versions")
    with RunWriter(request.bench.store, name) as writer:
        writer.write_json("facts.json", facts.to_dict() if facts is not None else None)
        writer.write_json("config.json", config.to_json())
        writer.write_json("results.json", results.to_json())
        writer.write_json("versions.json", Versions.from_json(versions, "rank versions", []).to_json())
        writer.write_csv("iterations.csv", ITERATION_COLUMNS, _iteration_rows(docs))
        if nccl is not None:
            writer.write_csv("nccl.csv", NCCL_COLUMNS, ([getattr(row, c) for c in NCCL_COLUMNS] for row in nccl))
        writer.write_csv("telemetry.csv", MULTI_TELEMETRY_COLUMNS, _telemetry_rows(docs))
        writer.write_csv("marks.csv", MULTI_MARK_COLUMNS, _mark_rows(docs))
        log_path = staging / "torchrun.log"
        text = log_path.read_text(encoding="utf-8", errors="replace") if log_path.exists() else launch.log_text
        writer.write_text("torchrun.log", text)
        path = writer.commit()
    return MultiOutcome(path=path, status=status, results=results)


def _rank_doc(rank: int, doc: dict[str, Any]) -> dict[str, Any]:
    return {
        **_rank_identity(rank, doc),
        "local_rank": doc.get("local_rank"),
        "node_rank": doc.get("node_rank"),
        "pid": doc.get("pid"),
        "gpu_name": doc.get("gpu_name"),
        "cpus": doc.get("cpus"),
        "pinning_note": doc.get("pinning_note"),
        "error": doc.get("error"),
        "traceback": doc.get("traceback"),
        "records": len(doc.get("records", [])),
        "result": {k: v for k, v in doc.get("result", {}).items() if k != "nccl"},
        "telemetry_note": doc.get("telemetry_note"),
        "build_s": doc.get("build_s"),
    }


def _samples(doc: dict[str, Any]) -> list[TelemetrySample]:
    count = len(dataclasses.fields(TelemetrySample))
    return [TelemetrySample(*row[:count]) for row in doc.get("telemetry", [])]


def _iteration_rows(docs: dict[int, dict[str, Any]]) -> Any:
    for rank in sorted(docs):
        for row in docs[rank].get("records", []):
            yield [rank, *(row.get(c) for c in ITERATION_COLUMNS[1:])]


def _telemetry_rows(docs: dict[int, dict[str, Any]]) -> Any:
    for rank in sorted(docs):
        for row in docs[rank].get("telemetry", []):
            yield [rank, docs[rank].get("gpu_index"), *row]


def _mark_rows(docs: dict[int, dict[str, Any]]) -> Any:
    for rank in sorted(docs):
        for row in docs[rank].get("marks", []):
            yield [rank, *row]
