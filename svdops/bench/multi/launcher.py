"""Launch a multi-process bench through torchrun, watch it, and merge what the ranks left behind.

torchrun (`python -m torch.distributed.run`) starts the ranks, runs the rendezvous (standalone on
one host, c10d across hosts, static when the node rank is given) and stops the survivors when a
rank dies. What it does not do is notice a rank that hangs: every rank's heartbeat file says what
it is doing, and when no rank has made progress for --rank-timeout seconds the launcher stops
the whole group and names the ranks that were not waiting on the others.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from svdops.bench.config import BenchRequest, load_scenario
from svdops.bench.multi import WORKLOADS, MultiRequest
from svdops.bench.multi.rank import WAITING
from svdops.errors import BadInputError
from svdops.runs.store import TMP_PREFIX, run_name

if TYPE_CHECKING:
    from svdops.bench.multi.merge import MultiOutcome

Progress = Callable[[str, dict[str, Any]], None]
DEFAULT_PORT = 29500
POLL_S = 0.5
KILL_GRACE_S = 10.0  # from SIGTERM to SIGKILL: long enough for a rank to save its finished work
PG_TIMEOUT_MARGIN_S = 60.0  # the launcher's own timeout should fire first, with the clearer message


@dataclass(frozen=True)
class LaunchPlan:
    workload: str
    device: str  # "cuda" or "cpu"
    gpus: tuple[int, ...]  # nvidia-smi indices on this host ((): the CPU)
    nproc_per_node: int
    nnodes: int
    node_rank: int | None
    rdzv_endpoint: str | None
    rank_timeout_s: float

    @property
    def world_size(self) -> int:
        return self.nproc_per_node * self.nnodes

    @property
    def backend(self) -> str:
        return "nccl" if self.device == "cuda" else "gloo"


def parse_gpus(text: str | None) -> tuple[int, ...] | None:
    """`all` (or nothing) -> None; `0,1,3` -> (0, 1, 3)."""
    if text is None or text.strip().lower() == "all":
        return None
    try:
        gpus = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise BadInputError(f"{text!r} is not a GPU list", where="--gpus", hint="use all or 0,1,2,3") from exc
    if not gpus or any(g < 0 for g in gpus) or len(set(gpus)) != len(gpus):
        raise BadInputError(f"{text!r}: give distinct GPU indices from 0", where="--gpus", hint="e.g. --gpus 0,1")
    return gpus


def wants_multi(workload: str | None, gpus: tuple[int, ...] | None, gpus_text: str | None, nproc: int | None) -> bool:
    """The CLI's switch: a workload, more than one GPU, or more than one process per node."""
    return bool(workload) or (gpus_text is not None and (gpus is None or len(gpus) > 1)) or (nproc or 1) > 1


def plan_launch(request: MultiRequest, visible_gpus: int) -> LaunchPlan:
    """Check the request against this host and settle how many ranks run on which devices."""
    plan = _plan(request, visible_gpus)
    if plan.workload == "infer-cfg" and plan.world_size % 2:
        raise BadInputError(f"infer-cfg pairs GPUs, and {plan.world_size} rank(s) cannot be paired",
                            where="--workload", hint="use an even number of GPUs, e.g. --gpus 0,1")  # fmt: skip
    return plan


def _plan(request: MultiRequest, visible_gpus: int) -> LaunchPlan:
    if request.workload not in WORKLOADS:
        raise BadInputError(
            f"unknown workload {request.workload!r}", where="--workload", hint=f"choose one of {', '.join(WORKLOADS)}"
        )
    bench = request.bench
    if bench.sweep:
        raise BadInputError(
            "--sweep runs on one GPU only",
            where="--sweep",
            hint="run the sweep without --workload/--gpus, then the chosen point on many GPUs",
        )
    if request.nnodes < 1:
        raise BadInputError("--nnodes must be at least 1", where="--nnodes")
    if request.nnodes > 1 and not request.rdzv_endpoint:
        raise BadInputError(
            "several hosts need a rendezvous point",
            where="--nnodes",
            hint="add --rdzv-endpoint HOST:PORT (a host every node can reach, e.g. node 0)",
        )
    if request.node_rank is not None and not 0 <= request.node_rank < request.nnodes:
        raise BadInputError(f"--node-rank {request.node_rank} is outside 0..{request.nnodes - 1}", where="--node-rank")
    if request.rdzv_endpoint:
        split_endpoint(request.rdzv_endpoint)
    if request.rank_timeout_s <= 0:
        raise BadInputError("--rank-timeout must be above 0 seconds", where="--rank-timeout")
    device = bench.device or "cuda"  # the CPU only when asked for: a GPU box missing its GPUs is a finding
    if device.startswith("cuda:"):
        raise BadInputError(
            f"--device {device} picks one GPU",
            where="--device",
            hint="choose GPUs with --gpus 0,1,... and leave --device as cuda",
        )
    if device == "cpu":
        if request.gpus is not None:
            raise BadInputError(
                "--gpus with --device cpu",
                where="--gpus",
                hint="on the CPU say how many processes with --nproc-per-node N",
            )
        scenario = load_scenario(bench.scenario)
        if scenario.needs_gpu and bench.weights is None and request.workload != "nccl":
            raise BadInputError(
                f"scenario {scenario.name!r} is the full model: hours per video on a CPU",
                where="--scenario",
                hint="use --scenario tiny with --device cpu",
            )
        return LaunchPlan(
            request.workload,
            "cpu",
            (),
            request.nproc_per_node or 2,
            request.nnodes,
            request.node_rank,
            request.rdzv_endpoint,
            request.rank_timeout_s,
        )
    if device != "cuda":
        raise BadInputError(f"unsupported device {device!r}", where="--device", hint="use cuda or cpu")
    if not visible_gpus:
        raise BadInputError(
            "no CUDA GPU is visible to torch",
            where="--gpus",
            hint="for a dry run without GPUs use --device cpu --nproc-per-node 2 --scenario tiny",
        )
    gpus = request.gpus if request.gpus is not None else tuple(range(visible_gpus))
    if request.gpus is None and request.nproc_per_node:
        gpus = gpus[: request.nproc_per_node]
    missing = [g for g in gpus if g >= visible_gpus]
    if missing:
        raise BadInputError(
            f"GPU(s) {missing} not found: torch sees {visible_gpus}",
            where="--gpus",
            hint="GPUs are numbered from 0 as nvidia-smi lists them",
        )
    if request.nproc_per_node and request.nproc_per_node != len(gpus):
        raise BadInputError(
            f"--nproc-per-node {request.nproc_per_node} but {len(gpus)} GPU(s) chosen",
            where="--nproc-per-node",
            hint="one rank per GPU: drop --nproc-per-node or match --gpus",
        )
    return LaunchPlan(
        request.workload,
        "cuda",
        gpus,
        len(gpus),
        request.nnodes,
        request.node_rank,
        request.rdzv_endpoint,
        request.rank_timeout_s,
    )


def split_endpoint(endpoint: str) -> tuple[str, int]:
    host, sep, port = endpoint.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadInputError(f"{endpoint!r} is not HOST:PORT", where="--rdzv-endpoint", hint="e.g. node0:29500")
    return host.strip("[]"), int(port)


def rdzv_id() -> str:
    """The same on every node of one job: Slurm's job id when there is one."""
    return os.environ.get("SVDOPS_RDZV_ID") or os.environ.get("SLURM_JOB_ID") or "svdops-bench"


def torchrun_argv(plan: LaunchPlan, spec_path: Path, python: str = sys.executable) -> list[str]:
    argv = [
        python,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        str(plan.nnodes),
        "--nproc-per-node",
        str(plan.nproc_per_node),
        "--max-restarts",
        "0",
        "--monitor-interval",
        "0.5",
    ]
    if plan.nnodes == 1 and not plan.rdzv_endpoint:
        argv.append("--standalone")  # a free local port: two runs on one host do not collide
    elif plan.node_rank is not None:
        # A fixed node order (e.g. Slurm's SLURM_NODEID): the static rendezvous of MASTER_ADDR/PORT.
        host, port = split_endpoint(plan.rdzv_endpoint or f"localhost:{DEFAULT_PORT}")
        argv += ["--node-rank", str(plan.node_rank), "--master-addr", host, "--master-port", str(port)]
    else:
        argv += [
            "--rdzv-backend",
            "c10d",
            "--rdzv-endpoint",
            plan.rdzv_endpoint or f"localhost:{DEFAULT_PORT}",
            "--rdzv-id",
            rdzv_id(),
        ]
    return [*argv, "-m", "svdops.bench.multi.worker", "--spec", str(spec_path)]


def device_entries(plan: LaunchPlan, base: dict[str, str] | None = None) -> list[str]:
    """The CUDA_VISIBLE_DEVICES entries of the chosen GPUs.

    --gpus numbers the GPUs this process may see. Where a scheduler has already narrowed
    CUDA_VISIBLE_DEVICES (Slurm does, to the job's GPUs), index into its list: replacing it with
    bare indices would hand the ranks another job's GPUs.
    """
    env = os.environ if base is None else base
    inherited = [e.strip() for e in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if e.strip()]
    if inherited:
        return [inherited[g] for g in plan.gpus if g < len(inherited)]
    return [str(g) for g in plan.gpus]


def nvidia_smi_indices(entries: list[str], facts: Any) -> list[int | None]:
    """nvidia-smi's index of each entry's GPU (for its NUMA-local CPUs): an index already, a GPU
    UUID found in the facts, or a MIG device's parent GPU where the entry names it (the legacy
    `MIG-GPU-<uuid>/<gi>/<ci>` form; an R470+ `MIG-<uuid>` does not, and nvidia-smi's XML lists no
    MIG UUIDs, so that one stays unknown: None, and the rank is not pinned)."""
    by_uuid = {g.uuid: g.index for g in getattr(facts, "gpus", ()) or () if g.uuid}

    def index(entry: str) -> int | None:
        if entry.isdigit():
            return int(entry)
        if entry.startswith("MIG-GPU-"):
            entry = entry.removeprefix("MIG-").split("/")[0]
        return by_uuid.get(entry)

    return [index(e) for e in entries]


def worker_env(plan: LaunchPlan, base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env["PYTHONUNBUFFERED"] = "1"
    if plan.device == "cuda":
        # nvidia-smi (and so the topology and NUMA affinity) numbers GPUs in PCI bus order; CUDA's
        # default puts the fastest first. Bus order makes local rank k the GPU the topology calls k.
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
        env["CUDA_VISIBLE_DEVICES"] = ",".join(device_entries(plan, base))
    return env


# --- Slurm ---------------------------------------------------------------------------------------


def bench_argv(request: MultiRequest) -> list[str]:
    """The `svdops bench` options that reproduce this request on a node (no node-specific ones)."""
    bench = request.bench
    args = [
        "--scenario",
        bench.scenario,
        "--workload",
        request.workload,
        "--store",
        bench.store,
        "--seed",
        str(bench.seed),
        "--rank-timeout",
        f"{request.rank_timeout_s:g}",
    ]
    args += ["--gpus", "all" if request.gpus is None else ",".join(map(str, request.gpus))]
    if request.nproc_per_node:
        args += ["--nproc-per-node", str(request.nproc_per_node)]
    for name in (
        "dtype",
        "decode_chunk",
        "steps",
        "frames",
        "height",
        "width",
        "videos_per_call",
        "iterations",
        "warmup",
        "weights",
    ):
        value = getattr(bench, name)
        if value is not None:
            args += ["--" + name.replace("_", "-"), str(value)]
    if bench.device:
        args += ["--device", bench.device]
    if bench.compile:
        args.append("--compile")
    if bench.compile_mode != "default":
        args += ["--compile-mode", bench.compile_mode]
    if bench.compile_cache:
        args += ["--compile-cache", bench.compile_cache]
    if not bench.telemetry:
        args.append("--no-telemetry")
    if bench.telemetry_hz != BenchRequest.telemetry_hz:
        args += ["--telemetry-hz", f"{bench.telemetry_hz:g}"]
    if request.nccl_max_bytes:
        args += ["--nccl-max-mb", f"{request.nccl_max_bytes / 2**20:g}"]
    if not request.grad_checkpointing:
        args.append("--no-grad-checkpointing")
    return args


def slurm_script(request: MultiRequest, python: str = sys.executable, port: int = DEFAULT_PORT) -> str:
    """An sbatch script: one `svdops bench` per node via srun, meeting at node 0 over c10d.

    Each node's bench runs torchrun for its own GPUs and writes its ranks' logs to its staging
    folder; rank 0's node gathers every rank's log and commits the merged run.
    """
    gpus_per_node = request.nproc_per_node or (len(request.gpus) if request.gpus else None)
    if not gpus_per_node:
        raise BadInputError(
            "the script must ask Slurm for a number of GPUs per node",
            where="--slurm-script",
            hint="add --nproc-per-node N (or --gpus 0,1,...)",
        )
    name = f"svdops-{request.workload}-{request.bench.scenario}"
    command = " ".join(shlex.quote(a) for a in [python, "-m", "svdops.bench", *bench_argv(request)])
    return f"""#!/bin/bash
# Written by `svdops bench --slurm-script`: {request.workload} on {request.nnodes} node(s) x {gpus_per_node} GPU(s).
#SBATCH --job-name={name}
#SBATCH --nodes={request.nnodes}
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node={gpus_per_node}
#SBATCH --exclusive
#SBATCH --output={name}-%j.out
set -euo pipefail
# --exclusive above: another job's traffic on the same GPUs and links would be measured too.
export HF_HUB_OFFLINE=1
# c10d rendezvous on the first node of the allocation; the job id keeps concurrent jobs apart.
head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
export SVDOPS_RDZV_ID="$SLURM_JOB_ID"
# One task per node; srun stops every node's bench when one fails.
srun --kill-on-bad-exit=1 {command} \\
    --nnodes "$SLURM_NNODES" --rdzv-endpoint "$head:{port}"
"""


def write_slurm_script(request: MultiRequest, path: str | os.PathLike[str]) -> Path:
    target = Path(path)
    try:
        target.write_text(slurm_script(request), encoding="utf-8")
    except OSError as exc:
        raise BadInputError(f"cannot write the script: {exc.strerror}", where=str(target)) from exc
    target.chmod(0o755)
    return target


# --- running -------------------------------------------------------------------------------------


@dataclass
class LaunchResult:
    """What torchrun and the watchdog said; the merge reads the ranks' own logs beside it."""

    returncode: int | None
    log_text: str
    stalled: dict[str, Any] | None = None  # stall_report(): idle_s, suspects, never_reported, activities
    interrupted: bool = False
    wall_s: float = 0.0
    root_causes: dict[int, dict[str, Any]] = field(default_factory=dict)


def run_multi(
    request: MultiRequest,
    *,
    progress: Progress | None = None,
    gather: Callable[[], tuple[Any, str | None]] | None = None,
    on_launch: Callable[[Path], None] | None = None,
) -> MultiOutcome:
    """Run the request on this host's share of the ranks and commit one run folder.

    `gather` replaces host-facts gathering (tests); `on_launch(staging)` is called once torchrun
    is started (tests use it to find the ranks).
    """
    from svdops.bench.environment import gather_local_facts, sigterm_as_interrupt
    from svdops.bench.models import import_stack
    from svdops.bench.multi import merge
    from svdops.bench.multi.topology import describe_links

    emit: Progress = progress or (lambda event, info: None)
    torch, _, _ = import_stack()
    visible = torch.cuda.device_count() if request.bench.device != "cpu" and torch.cuda.is_available() else 0
    plan = plan_launch(request, visible)
    if request.bench.weights:
        from svdops.bench.models import snapshot_weights

        snapshot_weights(request.bench.weights)  # a bad path fails here, not in every rank
    emit("phase", {"text": "gathering host facts and topology"})
    facts, facts_note = gather() if gather else gather_local_facts(use_nvml=plan.device == "cuda")
    physical = nvidia_smi_indices(device_entries(plan), facts) if plan.device == "cuda" else []
    links = describe_links(facts, [g for g in physical if g is not None], nnodes=plan.nnodes)
    host = getattr(facts, "hostname", None) or socket.gethostname()
    started = datetime.now(UTC)
    name = run_name(host, f"{request.bench.scenario}-{plan.workload}-x{plan.world_size}", started)
    store = Path(request.bench.store)
    try:
        store.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInputError(
            f"cannot create the run store: {exc.strerror}",
            where=str(store),
            hint="pass a writable folder with --store DIR",
        ) from exc
    staging = store / f"{TMP_PREFIX}multi-{name}-{os.getpid()}"
    staging.mkdir()
    spec = {
        "workload": plan.workload,
        "device": plan.device,
        "gpus": physical,  # per local rank, for its NUMA affinity (None: not found in the facts)
        "nnodes": plan.nnodes,
        "staging": str(staging.resolve()),
        "bench": dataclasses.asdict(request.bench),
        "pg_timeout_s": plan.rank_timeout_s + PG_TIMEOUT_MARGIN_S,
        "cpu_affinity": {str(gpu): value.get("cpus") for gpu, value in links.affinity.items()},
        "nccl_max_bytes": request.nccl_max_bytes,
        "grad_checkpointing": request.grad_checkpointing,
        "expected_busbw_gbps": links.expected.busbw_gbps if links.expected else None,
    }
    spec_path = staging / "spec.json"
    spec_path.write_text(json.dumps(spec, indent=2), encoding="utf-8")
    argv = torchrun_argv(plan, spec_path)
    emit("phase", {"text": f"torchrun: {plan.world_size} rank(s), {plan.workload} on {plan.device}"})
    # A launcher killed by SIGTERM would orphan torchrun and the ranks (each in its own session):
    # treat it as Ctrl-C, which stops them and keeps their finished work.
    with sigterm_as_interrupt():
        result = _supervise(argv, worker_env(plan), staging, plan, emit, on_launch)
    outcome = merge.write_run(
        staging=staging,
        request=request,
        plan=plan,
        links=links,
        facts=facts,
        facts_note=facts_note,
        launch=result,
        started=started,
        name=name,
        command=argv,
    )
    shutil.rmtree(staging, ignore_errors=True)
    return outcome


def _supervise(
    argv: list[str],
    env: dict[str, str],
    staging: Path,
    plan: LaunchPlan,
    emit: Progress,
    on_launch: Callable[[Path], None] | None,
) -> LaunchResult:
    log_path = staging / "torchrun.log"
    start = time.monotonic()
    launched_unix = time.time()
    stalled = None
    interrupted = False
    with log_path.open("wb") as log:
        # Its own session, so the launcher can signal torchrun's whole group without signalling itself.
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        if on_launch is not None:
            on_launch(staging)
        try:
            last_seen = ""
            while proc.poll() is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=POLL_S)
                if proc.returncode is not None:
                    break
                beats = read_heartbeats(staging)
                latest = max([launched_unix, *(mtime for _, mtime in beats.values())])
                idle = time.time() - latest
                # Phases, not steps: one line when a rank moves on, not one per UNet step.
                summary = "; ".join(f"rank {r}: {a.split(': step')[0]}" for r, (a, _) in sorted(beats.items()))
                if summary != last_seen:
                    emit("ranks", {"text": summary})
                    last_seen = summary
                if idle > plan.rank_timeout_s:
                    stalled = stall_report(beats, plan.world_size if plan.nnodes == 1 else None, idle)
                    stop_group(proc, staging)
                    break
        except KeyboardInterrupt:
            interrupted = True
            stop_group(proc, staging)
    text = log_path.read_text(encoding="utf-8", errors="replace")
    return LaunchResult(
        returncode=proc.returncode,
        log_text=text,
        stalled=stalled,
        interrupted=interrupted,
        wall_s=time.monotonic() - start,
        root_causes=parse_torchrun_failures(text),
    )


def read_heartbeats(staging: Path) -> dict[int, tuple[str, float]]:
    """rank -> (what it last said it was doing, when: Unix time of the file's last write)."""
    beats: dict[int, tuple[str, float]] = {}
    for path in staging.glob("rank-*.beat"):
        match = re.fullmatch(r"rank-(\d+)\.beat", path.name)
        if not match:
            continue
        with contextlib.suppress(OSError):
            beats[int(match.group(1))] = (path.read_text(encoding="utf-8"), path.stat().st_mtime)
    return beats


def stall_report(beats: dict[int, tuple[str, float]], world_size: int | None, idle_s: float) -> dict[str, Any]:
    """Which ranks held the others up: those not waiting in a collective (or never heard from)."""
    now = time.time()
    silent = [r for r in range(world_size or 0) if r not in beats]
    busy = sorted(r for r, (activity, _) in beats.items() if not activity.startswith(WAITING))
    return {
        "idle_s": round(idle_s, 1),
        "suspects": sorted(set(silent) | set(busy)),
        "never_reported": silent,
        "activities": {str(r): {"activity": a, "age_s": round(now - t, 1)} for r, (a, t) in sorted(beats.items())},
    }


def stop_group(proc: subprocess.Popen[bytes], staging: Path) -> None:
    """SIGTERM torchrun's group and every rank (torchrun starts each in its own session), then SIGKILL.

    SIGCONT too: a stopped process (SIGSTOP, a debugger) acts on SIGTERM only once it runs again.
    """
    pids = [pid for pid in _rank_pids(staging) if pid != os.getpid()]

    def signal_all(sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)

    signal_all(signal.SIGTERM)
    signal_all(signal.SIGCONT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=KILL_GRACE_S)
    if any(_alive(pid) for pid in pids) or proc.poll() is None:
        time.sleep(1.0)  # ranks that caught SIGTERM are writing their logs: a moment, then no more
        signal_all(signal.SIGKILL)
    proc.wait()


def _rank_pids(staging: Path) -> list[int]:
    pids = []
    for path in staging.glob("rank-*.json"):
        with contextlib.suppress(OSError, ValueError, json.JSONDecodeError):
            pid = json.loads(path.read_text(encoding="utf-8")).get("pid")
            if isinstance(pid, int) and pid > 1:
                pids.append(pid)
    return pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


_FAILURE_RE = re.compile(
    r"rank\s*:\s*(?P<rank>\d+)\s*\(local_rank:\s*(?P<local>\d+)\)\s*\n"
    r"\s*exitcode\s*:\s*(?P<code>-?\d+)\s*\(pid:\s*(?P<pid>\d+)\)[^\n]*\n"
    r"(?:\s*error_file\s*:[^\n]*\n)?"
    r"(?:\s*traceback\s*:\s*(?P<message>[^\n]*))?",
)


def parse_torchrun_failures(text: str) -> dict[int, dict[str, Any]]:
    """The failure blocks torchrun prints when ranks exit non-zero: rank -> {exitcode, pid, message,
    root_cause}; root_cause marks the block under "Root Cause (first observed failure)"."""
    root_at = text.rfind("Root Cause (first observed failure)")
    failures: dict[int, dict[str, Any]] = {}
    for match in _FAILURE_RE.finditer(text):
        failures[int(match.group("rank"))] = {
            "exitcode": int(match.group("code")),
            "pid": int(match.group("pid")),
            "message": (match.group("message") or "").strip() or None,
            "root_cause": root_at >= 0 and match.start() > root_at,
        }
    return failures
