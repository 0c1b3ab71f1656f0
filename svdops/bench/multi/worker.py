"""The per-rank entry point torchrun starts: `python -m svdops.bench.multi.worker --spec FILE`.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK and the rendezvous variables; the spec file (written
by the launcher) says which workload to run with which options. A rank never prints results: it
keeps its log in the staging folder, and the launcher merges every rank's log into one run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import socket
import sys
import time
import traceback
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from svdops.bench.multi.rank import RankContext, RankLog, heartbeat_path, rank_log_path, rendezvous_store
from svdops.bench.multi.topology import format_cpu_list, nvml_identity, pin_to_cpus
from svdops.files import atomic_write_json

if TYPE_CHECKING:
    from svdops.telemetry import TelemetrySampler

WORKLOAD_MODULES = {
    "infer-dp": "svdops.bench.multi.infer_dp",
    "infer-cfg": "svdops.bench.multi.infer_cfg",
    "train-ddp": "svdops.bench.multi.train_ddp",
    "nccl": "svdops.bench.multi.nccl_sweep",
}


class Terminated(Exception):
    """SIGTERM from torchrun (another rank failed) or the launcher: keep what is finished, then exit."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated(f"stopped by signal {signal.Signals(signum).name} (another rank failed or the run timed out)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m svdops.bench.multi.worker")
    parser.add_argument("--spec", required=True, help="the launcher's spec.json")
    args = parser.parse_args(argv)
    spec = json.loads(Path(args.spec).read_text(encoding="utf-8"))
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    staging = Path(spec["staging"])
    log = RankLog(rank_log_path(staging, rank), heartbeat_path(staging, rank))
    log.doc.update(
        rank=rank,
        local_rank=local_rank,
        node_rank=int(os.environ.get("GROUP_RANK", "0")),
        world_size=int(os.environ["WORLD_SIZE"]),
        host=socket.gethostname(),
        pid=os.getpid(),
        workload=spec["workload"],
        status="starting",
        started_unix=time.time(),
    )
    log.heartbeat("starting")
    signal.signal(signal.SIGTERM, _on_sigterm)
    gpu = spec["gpus"][local_rank] if spec["device"] == "cuda" and local_rank < len(spec["gpus"]) else None
    log.doc["gpu_index"] = gpu
    if gpu is not None:
        # Before torch is imported, so its thread pools start on the GPU's NUMA-local CPUs.
        cpus, why = pin_to_cpus(spec.get("cpu_affinity", {}).get(str(gpu)))
        log.doc["cpus"] = format_cpu_list(cpus) if cpus else None
        log.doc["pinning_note"] = why
    log.save()
    try:
        return _run(spec, log, rank, local_rank)
    finally:
        log.save()


def _run(spec: dict[str, Any], log: RankLog, rank: int, local_rank: int) -> int:
    sampler: TelemetrySampler | None = None
    dist: Any = None  # torch.distributed once imported; the finally block may run before that
    try:
        import torch
        import torch.distributed

        dist = torch.distributed

        from svdops.bench.config import BenchRequest, resolve_points

        cuda = spec["device"] == "cuda"
        device = f"cuda:{local_rank}" if cuda else "cpu"
        if cuda:
            torch.cuda.set_device(local_rank)
        log.doc["device"] = device
        log.doc["gpu_name"] = torch.cuda.get_device_name(local_rank) if cuda else None
        backend = "nccl" if cuda else "gloo"
        log.heartbeat("joining the process group")
        # The timeout bounds every collective: a rank on another host that dies cannot hang this one.
        dist.init_process_group(
            backend,
            timeout=timedelta(seconds=spec["pg_timeout_s"]),
            # Binds the NCCL communicator to this rank's GPU now rather than guessing at the first collective.
            device_id=torch.device(device) if cuda else None,
        )
        request = BenchRequest(**{**spec["bench"], "sweep": tuple(spec["bench"]["sweep"])})
        point = resolve_points(request, device)[0]
        log.doc["config"] = point.to_dict()
        sampler = _start_telemetry(request, device, torch, log)
        ctx = RankContext(
            rank=rank,
            world_size=dist.get_world_size(),
            local_rank=local_rank,
            device=device,
            backend=backend,
            spec=spec,
            log=log,
            dist=dist,
            torch=torch,
            mark=lambda label: _mark(sampler, label),
            store=rendezvous_store(dist),
        )
        if rank == 0:
            log.doc["versions"] = _versions(torch, device)
        log.doc["status"] = "running"
        log.save()
        importlib.import_module(WORKLOAD_MODULES[spec["workload"]]).run(ctx, point)
        log.doc["status"] = "ok"
        log.doc["finished_unix"] = time.time()
        _stop(sampler, log)
        sampler = None
        log.save()
        if spec.get("nnodes", 1) > 1:
            _gather_to_rank0(dist, log, rank, Path(spec["staging"]))
        return 0
    except (Terminated, KeyboardInterrupt) as exc:
        log.doc.update(status="interrupted", error=str(exc) or type(exc).__name__, failed_unix=time.time())
        return 1
    except BaseException as exc:
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        status = "oom" if _is_oom(exc) else "failed"
        log.doc.update(status=status, error=text, traceback=traceback.format_exc(), failed_unix=time.time())
        print(f"[rank {rank}] {traceback.format_exc()}", file=sys.stderr, flush=True)
        return 1
    finally:
        _stop(sampler, log)
        if dist is not None and dist.is_initialized():
            try:
                dist.destroy_process_group()
            except Exception as exc:  # a peer already gone: nothing left to release cleanly
                log.doc.setdefault("notes", []).append(f"destroy_process_group: {exc}")


def _is_oom(exc: BaseException) -> bool:
    """An out-of-memory (the single-GPU bench's test), without importing torch for it anew."""
    torch = sys.modules.get("torch")
    if torch is None:
        return False
    from svdops.bench.environment import is_oom

    return is_oom(exc, torch)


def _start_telemetry(request: Any, device: str, torch: Any, log: RankLog) -> Any:
    if not (request.telemetry and device.startswith("cuda")):
        log.doc["telemetry_note"] = "telemetry off" if not request.telemetry else "no telemetry on the CPU"
        return None
    from svdops.telemetry import TelemetrySampler

    sampler = TelemetrySampler(_nvml_identity(device, torch, log), hz=request.telemetry_hz)
    sampler.start()
    log.doc["telemetry_note"] = sampler.note
    log.doc["telemetry_gpu"] = sampler.gpu_name
    log.telemetry = lambda: {
        "telemetry": [s.as_row() for s in sampler.samples],
        "marks": [m.as_row() for m in sampler.marks],
    }
    return sampler


def _nvml_identity(device: str, torch: Any, log: RankLog) -> int | str:
    local = int(device.partition(":")[2] or 0)
    entries = [e.strip() for e in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if e.strip()]
    properties = torch.cuda.get_device_properties(local)
    uuid = getattr(properties, "uuid", None)
    identity = nvml_identity(
        entries[local] if local < len(entries) else None,
        None if uuid is None else str(uuid),
        getattr(properties, "name", None),
        log.doc.get("gpu_index"),
    )
    log.doc["nvml_device"] = identity
    return identity


def _mark(sampler: TelemetrySampler | None, label: str) -> None:
    if sampler is not None:  # None once stopped, and with telemetry off
        sampler.mark(label)


def _stop(sampler: Any, log: RankLog) -> None:
    if sampler is not None:
        sampler.stop()
        log.doc["telemetry_sampler_cpu_s"] = round(sampler.thread_cpu_s, 4)


def _versions(torch: Any, device: str) -> dict[str, Any]:
    from svdops.bench.environment import collect_versions
    from svdops.telemetry import TelemetrySampler

    versions = collect_versions(torch, TelemetrySampler(), None, device)
    nccl = torch.cuda.nccl.version() if device.startswith("cuda") else None
    versions.nccl = ".".join(map(str, nccl)) if isinstance(nccl, tuple) else None if nccl is None else str(nccl)
    return versions.to_json()


def _gather_to_rank0(dist: Any, log: RankLog, rank: int, staging: Path) -> None:
    """Across hosts, rank 0's staging folder is the only one that sees every rank: send it ours."""
    log.heartbeat("waiting: gathering every rank's log on rank 0")
    docs: list[Any] | None = [None] * dist.get_world_size() if rank == 0 else None
    dist.gather_object(log.doc, docs, dst=0)
    if docs is None:
        return
    for other, doc in enumerate(docs):
        path = rank_log_path(staging, other)
        if doc is not None and not path.exists():
            atomic_write_json(path, doc, indent=None)


if __name__ == "__main__":
    sys.exit(main())
