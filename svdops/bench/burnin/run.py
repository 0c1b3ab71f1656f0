"""One burn-in: DCGM when it is there (else the svdops burn), bounded, interruptible, one run folder.

The run folder is written as the tests finish: after each one, burnin.json and results.json are
rewritten inside the writer's hidden folder, so Ctrl-C (or SIGTERM) commits what finished with
status "interrupted" and the tests that did not run listed as such.

    <store>/<stamp>-<host>-burnin/
        burnin.json     the checks (svdops.burnin/1): DCGM tests or svdops measurements, per GPU
        results.json    kind "burnin", status ok | failed | interrupted, telemetry summary per GPU
        telemetry.csv   NVML samples of every GPU during the matmul burn (rank = position, gpu = index)
        config.json, versions.json, facts.json, dcgm.json (dcgmi's own output, when DCGM ran)
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import os
import platform
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from svdops import __version__
from svdops.bench.burnin import (
    COPY_BYTES_GPU,
    COPY_LIMIT_S,
    MAX_DURATION_S,
    MEMORY_LIMIT_S,
    TELEMETRY_HZ,
    BurninRequest,
    burn,
    dcgm,
)
from svdops.errors import BadInputError, MissingDependencyError
from svdops.runs.documents import (
    BURNIN_FILE,
    BurnCheck,
    BurnIn,
    Config,
    Results,
    TelemetryRecord,
    TelemetrySummary,
    Versions,
)
from svdops.runs.store import RunWriter, run_name, unfinished_notes
from svdops.telemetry import TELEMETRY_COLUMNS, TelemetrySampler, summarize

Progress = Callable[[str], None]
BURN_TESTS = ("matmul", "clocks", "memory", "h2d", "p2p", "nccl")
DCGM_TESTS = ("dcgm",)
TELEMETRY_FILE_COLUMNS = ("rank", "gpu", *TELEMETRY_COLUMNS)  # as a multi-GPU bench run writes it


@dataclass
class BurninOutcome:
    path: Path
    doc: BurnIn
    interrupted: bool = False

    @property
    def failed(self) -> bool:
        return any(check.status == "fail" for check in self.doc.checks)


@dataclass
class _Env:
    """What the run needs from outside, each replaceable in tests."""

    torch: Any = None
    nvml: Any = None
    dcgmi: str | None = None
    dcgm_runner: Any = None
    facts: Any = None
    facts_note: str | None = None
    nccl: Callable[[BurninRequest, tuple[int, ...]], Any] | None = None
    progress: Progress = field(default=lambda text: None)


def validate(request: BurninRequest) -> None:
    if not 0 < request.duration_s <= MAX_DURATION_S:
        raise BadInputError(
            f"--duration {request.duration_s:g} is outside 1 s to {MAX_DURATION_S:.0f} s",
            where="--duration",
            hint="e.g. --duration 60 (seconds of sustained matmul)",
        )
    if request.dcgm_level is not None and request.dcgm_level not in dcgm.LEVEL_TIMEOUT_S:
        raise BadInputError(
            f"--dcgm-level {request.dcgm_level} is not 1-4",
            where="--dcgm-level",
            hint="1: about a minute, 2: a few minutes, 3: about 30 minutes, 4: one to two hours",
        )
    if request.device not in ("cuda", "cpu"):
        raise BadInputError(f"unsupported device {request.device!r}", where="--device", hint="use cuda or cpu")
    if request.device == "cpu" and request.gpus:
        raise BadInputError("--gpus with --device cpu", where="--gpus", hint="the CPU dry run uses no GPU")
    if not 0 < request.memory_fraction < 1:
        raise BadInputError(f"memory fraction {request.memory_fraction} is outside (0, 1)", where="--memory-fraction")


def import_torch() -> Any:
    # The burn needs torch alone (not diffusers): imported here, never at module import
    if "CUDA_VISIBLE_DEVICES" not in os.environ:
        # torch's default order is fastest-first; nvidia-smi, NVML and DCGM number GPUs by PCI bus
        os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    try:
        return importlib.import_module("torch")
    except ImportError as exc:
        raise MissingDependencyError(
            f"the burn needs torch ({exc})", hint="install torch for your CUDA, then `pip install 'svdops[bench]'`"
        ) from exc


def run_burnin(
    request: BurninRequest,
    *,
    torch: Any = None,
    nvml: Any = None,
    dcgmi: str | bool | None = True,
    dcgm_runner: Any = None,
    gather: Callable[[], tuple[Any, str | None]] | None = None,
    nccl: Callable[[BurninRequest, tuple[int, ...]], Any] | None = None,
    progress: Progress | None = None,
) -> BurninOutcome:
    """Run the burn-in and commit its run folder. `dcgmi=True` looks dcgmi up on PATH; a path uses
    that one; None/False: no DCGM. `torch`, `nvml`, `dcgm_runner`, `gather`, `nccl`: tests."""
    validate(request)
    env = _Env(
        torch=torch,
        nvml=nvml,
        dcgm_runner=dcgm_runner,
        nccl=nccl,
        progress=progress or (lambda text: None),
        dcgmi=(dcgm.find_dcgmi() if dcgmi is True else (dcgmi or None)) if request.dcgm_level else None,
    )
    if gather is not None:
        env.facts, env.facts_note = gather()
    elif request.device == "cuda":
        from svdops.bench.environment import gather_local_facts

        env.progress("gathering host facts (PCIe links, topology)")
        env.facts, env.facts_note = gather_local_facts(use_nvml=True)
    host = getattr(env.facts, "hostname", None) or socket.gethostname()
    started = datetime.now(UTC)
    doc = BurnIn(
        status="running",
        duration_s=request.duration_s,
        dcgm_level=request.dcgm_level,
        started_at=started.isoformat(timespec="seconds"),
    )
    if env.facts_note:
        doc.notes.append(env.facts_note)
    from svdops.bench.environment import sigterm_as_interrupt

    with RunWriter(request.store, run_name(host, "burnin", started)) as writer:
        doc.notes.extend(unfinished_notes(writer))
        state = _State(writer, doc, request, env, time.monotonic())
        state.write_static()
        interrupted = False
        try:
            with sigterm_as_interrupt():
                state.run()
        except KeyboardInterrupt:
            interrupted = True
            state.stop.set()
        doc.status = (
            "interrupted" if interrupted else ("failed" if any(c.status == "fail" for c in doc.checks) else "ok")
        )
        doc.finished_at = datetime.now(UTC).isoformat(timespec="seconds")
        done = set(doc.tests_finished)
        doc.tests_not_run = [t for t in state.planned if t not in done]
        state.save()
        path = writer.commit()
    return BurninOutcome(path, doc, interrupted)


class _State:
    def __init__(self, writer: RunWriter, doc: BurnIn, request: BurninRequest, env: _Env, t0: float) -> None:
        self.writer, self.doc, self.request, self.env, self.t0 = writer, doc, request, env, t0
        self.stop = threading.Event()
        self.planned: list[str] = []
        self.samplers: list[TelemetrySampler] = []
        self.gpu_name: str | None = None

    # --- files -----------------------------------------------------------------------------

    def write_static(self) -> None:
        w = self.writer
        facts = self.env.facts
        w.write_json("facts.json", facts.to_dict() if facts is not None and hasattr(facts, "to_dict") else None)
        w.write_json("config.json", Config(request=dataclasses.asdict(self.request)).to_json())
        self.save()

    def save(self) -> None:
        """burnin.json and results.json as they stand: called after every finished test."""
        self.writer.write_json(BURNIN_FILE, self.doc.to_json())
        status = self.doc.status if self.doc.status in ("ok", "failed", "interrupted") else "partial"
        results = Results(
            kind="burnin",
            status=status,
            scenario="burnin",
            device=self.request.device,
            gpu=self.gpu_name,
            started_at=self.doc.started_at,
            finished_at=self.doc.finished_at,
            wall_s=round(time.monotonic() - self.t0, 3),
            telemetry=self._telemetry(),
            notes=list(self.doc.notes),
        )
        self.writer.write_json("results.json", results.to_json())

    def finish(self, test: str, checks: Sequence[BurnCheck]) -> None:
        self.doc.checks.extend(checks)
        self.doc.tests_finished.append(test)
        self.save()
        fails = sum(c.status == "fail" for c in checks)
        self.env.progress(f"{test}: {len(checks)} check(s)" + (f", {fails} failed" if fails else ", none failed"))

    # --- the plan --------------------------------------------------------------------------

    def run(self) -> None:
        if self.env.dcgmi:
            self.doc.mode = "dcgm"
            self.planned = list(DCGM_TESTS)
            if self._run_dcgm():
                return
        self.doc.mode = "burn"
        self._run_burn()

    def _run_dcgm(self) -> bool:
        level = self.request.dcgm_level or 1
        dcgmi = self.env.dcgmi or "dcgmi"
        self.env.progress(f"DCGM diagnostic level {level} (`dcgmi diag -r {level} -j`)")
        kwargs = {"runner": self.env.dcgm_runner} if self.env.dcgm_runner else {}
        try:
            diag = dcgm.run_diag(dcgmi, level, self.request.gpus, **kwargs)
        except dcgm.DcgmError as exc:
            self.doc.notes.append(f"DCGM did not run, the svdops burn runs instead: {exc}")
            self.finish(
                "dcgm",
                [
                    BurnCheck(
                        name="dcgm",
                        source="svdops",
                        status="warn",
                        detail=f"dcgmi is installed but gave no result: {exc}; "
                        "check `systemctl status nvidia-dcgm` (nv-hostengine)",
                    )
                ],
            )
            return False
        self.doc.dcgm_version = diag.version
        self.writer.write_json(
            "dcgm.json", {"version": diag.version, "driver": diag.driver, "checks": [c.to_json() for c in diag.checks]}
        )
        self.finish("dcgm", diag.checks)
        return True

    def _run_burn(self) -> None:
        torch = self.env.torch or import_torch()
        request = self.request
        if request.device == "cuda":
            if not torch.cuda.is_available() or not torch.cuda.device_count():
                raise BadInputError(
                    "no CUDA GPU is visible to torch",
                    where="svdops burnin",
                    hint="check `nvidia-smi`; for a dry run of the mechanics use --device cpu",
                )
            visible = torch.cuda.device_count()
            gpus = request.gpus if request.gpus is not None else tuple(range(visible))
            missing = [g for g in gpus if g >= visible]
            if missing:
                raise BadInputError(
                    f"GPU(s) {missing} not found: torch sees {visible}",
                    where="--gpus",
                    hint="GPUs are numbered from 0 as nvidia-smi lists them",
                )
            devices = [f"cuda:{g}" for g in gpus]
            self.gpu_name = str(torch.cuda.get_device_name(devices[0]))
            slots: list[int | None] = list(gpus)
        else:
            gpus, devices, slots = (), ["cpu"], [None]
            self.doc.notes.append("CPU dry run: the burn's mechanics on the CPU; no GPU was judged")
        self.doc.gpus = list(gpus)
        self.planned += list(BURN_TESTS)
        self.writer.write_json(
            "versions.json",
            Versions(
                svdops=__version__,
                python=platform.python_version(),
                platform=platform.platform(),
                torch=str(getattr(torch, "__version__", "")) or None,
                torch_cuda=getattr(getattr(torch, "version", None), "cuda", None),
                gpu=self.gpu_name,
            ).to_json(),
        )
        self._matmul(torch, devices, slots)
        self._memory(torch, devices, slots)
        self._h2d(torch, devices, slots)
        self._p2p(torch, gpus)
        self._nccl(gpus)

    # --- the tests -------------------------------------------------------------------------

    def _matmul(self, torch: Any, devices: list[str], slots: list[int | None]) -> None:
        seconds = self.request.duration_s
        self.env.progress(f"matmul burn: {seconds:.0f} s on {', '.join(devices)} at once, NVML sampled")
        sampled = [s for s in slots if s is not None] or ([0] if self.env.nvml is not None else [])
        self.samplers = [TelemetrySampler(gpu, hz=TELEMETRY_HZ, nvml=self.env.nvml) for gpu in sampled]
        for sampler in self.samplers:
            sampler.start()
        try:
            dtype = "float16" if self.request.device == "cuda" else "float32"
            size = self.request.matmul_size if self.request.device == "cuda" else min(self.request.matmul_size, 256)
            results = burn.burn_all(torch, devices, seconds, size=size, dtype=dtype, stop=self.stop)
        finally:
            for sampler in self.samplers:
                sampler.stop()
            self._write_telemetry()
        self.finish("matmul", [burn.matmul_check(r, gpu) for r, gpu in zip(results, slots, strict=True)])
        clocks = [
            burn.judge_clocks(s.samples, s.device if isinstance(s.device, int) else None, s.note) for s in self.samplers
        ]
        if not clocks:
            clocks = [
                BurnCheck(
                    name="clocks",
                    source="svdops",
                    status="skip",
                    detail="no GPU sampled: NVML clocks are read on GPU runs",
                )
            ]
        self.finish("clocks", clocks)

    def _memory(self, torch: Any, devices: list[str], slots: list[int | None]) -> None:
        limit = min(MEMORY_LIMIT_S, self.request.duration_s)
        self.env.progress(
            f"memory pattern test: {self.request.memory_fraction:.0%} of free memory, at most {limit:.0f} s per GPU"
        )
        checks = []
        for device, gpu in zip(devices, slots, strict=True):
            nbytes = burn.memory_bytes(torch, device, self.request.memory_fraction, self.request.cpu_memory_bytes)
            checks.append(
                burn.memory_check(burn.memory_pattern(torch, device, nbytes, seconds=limit, stop=self.stop), gpu)
            )
        self.finish("memory", checks)

    def _h2d(self, torch: Any, devices: list[str], slots: list[int | None]) -> None:
        self.env.progress("host-to-device bandwidth per GPU")
        checks = []
        for device, gpu in zip(devices, slots, strict=True):
            nbytes = COPY_BYTES_GPU if device.startswith("cuda") else 16 * 2**20
            measured = burn.copy_bandwidth(
                torch, "cpu", device, nbytes, seconds=COPY_LIMIT_S, stop=self.stop, pin=device.startswith("cuda")
            )
            expected, link = self._pcie(gpu)
            checks.append(burn.bandwidth_check("h2d", gpu, None, measured, expected, link))
        self.finish("h2d", checks)

    def _p2p(self, torch: Any, gpus: Sequence[int]) -> None:
        if len(gpus) < 2:
            self.finish(
                "p2p",
                [
                    BurnCheck(
                        name="p2p",
                        source="svdops",
                        status="skip",
                        detail="fewer than two GPUs: no GPU-to-GPU link to measure",
                    )
                ],
            )
            return
        self.env.progress(f"GPU-to-GPU bandwidth, {len(gpus) * (len(gpus) - 1)} ordered pairs")
        checks = []
        for a in gpus:
            for b in gpus:
                if a == b or self.stop.is_set():
                    continue
                measured = burn.copy_bandwidth(
                    torch, f"cuda:{a}", f"cuda:{b}", COPY_BYTES_GPU, seconds=COPY_LIMIT_S, stop=self.stop
                )
                expected, link = self._pair(a, b)
                checks.append(burn.bandwidth_check("p2p", a, b, measured, expected, link))
        self.finish("p2p", checks)

    def _nccl(self, gpus: Sequence[int]) -> None:
        if len(gpus) < 2 or not self.request.nccl:
            why = "fewer than two GPUs" if len(gpus) < 2 else "NCCL left out (--no-nccl)"
            self.finish(
                "nccl",
                [
                    BurnCheck(
                        name="nccl",
                        source="svdops",
                        status="skip",
                        detail=f"{why}: no all-reduce; `svdops bench --workload nccl` runs it alone",
                    )
                ],
            )
            return
        self.env.progress("NCCL all-reduce across all GPUs (the bench's sweep, through torchrun)")
        runner = self.env.nccl or _bench_nccl
        self.finish("nccl", [nccl_check(runner(self.request, tuple(gpus)))])

    # --- link figures ----------------------------------------------------------------------

    def _gpu_facts(self, gpu: int | None) -> Any:
        facts = self.env.facts
        return next((g for g in getattr(facts, "gpus", ()) if g.index == gpu), None) if gpu is not None else None

    def _pcie(self, gpu: int | None) -> tuple[float | None, str]:
        if gpu is None:
            return None, "host memory (CPU run)"
        g = self._gpu_facts(gpu)
        gen, width = (g.pcie_gen_max, g.pcie_width_max) if g is not None else (None, None)
        if gen is None or width is None:
            return None, "PCIe (generation and width not in the host facts)"
        return burn.pcie_expected_gbps(gen, width), f"PCIe gen{gen} x{width}"

    def _pair(self, a: int, b: int) -> tuple[float | None, str]:
        facts = self.env.facts
        topology = getattr(facts, "topology", None)
        link = topology.link(a, b) if topology is not None else None
        if link is None:
            return None, "link unknown (not in `nvidia-smi topo -m`)"
        if link.is_nvlink:
            from svdops.judge.knowledge import find_gpu_spec

            g = self._gpu_facts(a)
            spec = find_gpu_spec(g.name) if g is not None else None
            gen = spec.nvlink_gen if spec is not None else None
            return burn.nvlink_expected_gbps(link.kind, gen), f"NVLink{gen or '?'} {link.kind}"
        slower = [self._pcie(x)[0] for x in (a, b)]
        known = [x for x in slower if x is not None]
        return (min(known) if known else None), f"PCIe ({link.kind})"

    # --- telemetry -------------------------------------------------------------------------

    def _write_telemetry(self) -> None:
        rows = [[rank, s.device, *sample.as_row()] for rank, s in enumerate(self.samplers) for sample in s.samples]
        if rows:
            self.writer.write_csv("telemetry.csv", TELEMETRY_FILE_COLUMNS, rows)

    def _telemetry(self) -> TelemetryRecord | None:
        if not self.samplers:
            return None
        per_rank = {
            str(rank): TelemetrySummary.checked(summarize(s.samples), f"GPU {s.device} telemetry")
            for rank, s in enumerate(self.samplers)
        }
        first = self.samplers[0]
        return TelemetryRecord(
            enabled=True,
            available=any(s.available for s in self.samplers),
            gpu=first.gpu_name,
            note=first.note,
            hz=TELEMETRY_HZ,
            summary=per_rank.get("0"),
            per_rank=per_rank if len(per_rank) > 1 else None,
        )


# --- NCCL, through the bench -------------------------------------------------------------------------


def _bench_nccl(request: BurninRequest, gpus: tuple[int, ...]) -> Any:
    """`svdops bench --workload nccl --gpus ...`: its own run folder in the same store."""
    from svdops.bench.config import BenchRequest
    from svdops.bench.multi import MultiRequest
    from svdops.bench.multi.launcher import run_multi

    multi = MultiRequest(bench=BenchRequest(store=request.store, device="cuda"), workload="nccl", gpus=gpus)
    return run_multi(multi)


NCCL_PASS_FRACTION = 0.8
NCCL_FAIL_FRACTION = 0.5


def nccl_check(outcome: Any) -> BurnCheck:
    """The bench's NCCL outcome (a MultiOutcome: status, path, results.nccl) judged against the
    bus bandwidth the topology should give."""
    results = getattr(outcome, "results", None)
    rows = list(getattr(results, "nccl", None) or [])
    run = getattr(getattr(outcome, "path", None), "name", None)
    status = getattr(outcome, "status", None)
    if status != "ok" or not rows:
        failure = getattr(results, "failure", None)
        why = getattr(failure, "error", None) or f"status {status!r}, {len(rows)} sizes measured"
        return BurnCheck(
            name="nccl",
            source="svdops",
            status="fail" if status == "failed" else "skip",
            figures={"run": run},
            detail=f"the NCCL all-reduce did not finish: {why}",
        )
    best = max(rows, key=lambda r: r.busbw_gbps or 0.0)
    busbw = best.busbw_gbps
    expected = next((r.expected_busbw_gbps for r in rows if r.expected_busbw_gbps), None)
    figures = {
        "run": run,
        "busbw_gbps": None if busbw is None else round(busbw, 2),
        "size_bytes": best.size_bytes,
        "expected_busbw_gbps": expected,
    }
    said = f"all-reduce bus bandwidth {busbw or 0:.1f} GB/s at {best.size_bytes or 0:,} bytes (run {run})"
    verdict = functools.partial(BurnCheck, name="nccl", source="svdops", figures=figures)
    if expected is None or busbw is None:
        return verdict(status="pass", detail=f"{said}; no expected figure for this topology")
    share = busbw / expected
    figures["fraction"] = round(share, 3)
    said += f", {share:.0%} of the {expected:.0f} GB/s this topology gives"
    if share < NCCL_FAIL_FRACTION:
        return verdict(
            status="fail", detail=f"{said}: check `nvidia-smi nvlink -s`, nvidia-fabricmanager and NCCL_DEBUG=INFO"
        )
    if share < NCCL_PASS_FRACTION:
        return verdict(status="warn", detail=said)
    return verdict(status="pass", detail=said)
