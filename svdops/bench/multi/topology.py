"""How the ranks' GPUs reach each other, what bus bandwidth that link should give, and NUMA pinning.

Pure over a HostFacts snapshot (its `nvidia-smi topo -m` matrix, NVML GPU rows): the launcher
gathers the facts once and hands each rank its CPU list, so no rank runs nvidia-smi itself.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from svdops.host.facts import HostFacts


@dataclass(frozen=True)
class ExpectedBusbw:
    link: str  # "nvlink" or "pcie"
    gen: int
    busbw_gbps: float
    source: str


# All-reduce bus bandwidth that a healthy box of this kind reaches at large messages (nccl-tests
# all_reduce_perf, ring/NVLS, GB/s = 1e9 B/s). A measured figure far below these is the finding.
EXPECTED_BUSBW: tuple[ExpectedBusbw, ...] = (
    ExpectedBusbw("nvlink", 4, 370.0, "H100 SXM, 8 GPUs on NVSwitch (NVLink4), nccl-tests all_reduce ring: about 370"),
    ExpectedBusbw("nvlink", 3, 230.0, "A100 SXM, 8 GPUs on NVSwitch (NVLink3), nccl-tests all_reduce ring: about 230"),
    ExpectedBusbw("pcie", 4, 20.0, "a PCIe 4.0 x16 GPU pair without NVLink, nccl-tests all_reduce: about 20"),
    # Scaled from the PCIe 4 figure by the lane rate (8, 16, 32 GT/s): the same protocol overheads apply.
    ExpectedBusbw("pcie", 3, 10.0, "PCIe 4.0 pair figure (20) halved for PCIe 3.0's lane rate: an estimate"),
    ExpectedBusbw("pcie", 5, 40.0, "PCIe 4.0 pair figure (20) doubled for PCIe 5.0's lane rate: an estimate"),
)


def nvml_identity(
    visible_entry: str | None, cuda_uuid: str | None, cuda_name: str | None, index: int | None
) -> int | str:
    """What NVML knows a rank's CUDA device by, for its telemetry.

    `visible_entry`: the rank's CUDA_VISIBLE_DEVICES entry; `cuda_uuid` and `cuda_name`: torch's
    device properties (the UUID without a prefix); `index`: nvidia-smi's index, if known.
    nvmlDeviceGetHandleByUUID takes `GPU-<uuid>` for a GPU and `MIG-<uuid>` (or the legacy
    `MIG-GPU-<uuid>/<gi>/<ci>`) for a MIG device: a MIG device's UUID under `GPU-` finds nothing,
    and every sample is lost. CUDA names a MIG device "<GPU> MIG <profile>".
    """
    if visible_entry and visible_entry.startswith(("GPU-", "MIG-")):
        return visible_entry  # the scheduler's own name for the device: CUDA and NVML share it
    if cuda_uuid:
        text = str(cuda_uuid)
        if text.startswith(("GPU-", "MIG-")):
            return text
        mig = " MIG " in f" {cuda_name or ''} "
        return f"{'MIG' if mig else 'GPU'}-{text}"
    return index if index is not None else 0


def expected_busbw(link: str | None, gen: int | None) -> ExpectedBusbw | None:
    return next((row for row in EXPECTED_BUSBW if row.link == link and row.gen == gen), None)


@dataclass(frozen=True)
class LinkReport:
    """The slowest path between any two of the GPUs in use, and what it should deliver."""

    gpus: tuple[int, ...]
    link_type: str | None  # "nvlink", "pcie", "mixed" (some pairs NVLink, some not), None: unknown
    pairs: tuple[tuple[int, int, str], ...] = ()  # (gpu_a, gpu_b, topo kind: NV18, PIX, SYS...)
    nvlink_gen: int | None = None
    pcie_gen: int | None = None
    expected: ExpectedBusbw | None = None
    gpu_names: tuple[str, ...] = ()
    affinity: dict[int, dict[str, str | None]] = field(default_factory=dict)  # gpu -> {cpus, numa}
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": "nvidia-smi topo -m and NVML (facts.json)",
            "gpus": list(self.gpus),
            "gpu_names": list(self.gpu_names),
            "link_type": self.link_type,
            "pairs": [{"gpu_a": a, "gpu_b": b, "kind": kind} for a, b, kind in self.pairs],
            "nvlink_gen": self.nvlink_gen,
            "pcie_gen": self.pcie_gen,
            "expected_busbw_gbps": self.expected.busbw_gbps if self.expected else None,
            "expected_source": self.expected.source if self.expected else None,
            "affinity": {str(gpu): value for gpu, value in self.affinity.items()},
            "warnings": list(self.warnings),
            "notes": list(self.notes),
        }


def describe_links(facts: HostFacts | None, gpus: Sequence[int], *, nnodes: int = 1) -> LinkReport:
    """Link type among `gpus` (nvidia-smi indices) on this host, with the expected bus bandwidth.

    A box whose GPUs are SXM boards is built around NVLink: ranks that talk over PCIe there mean
    a missing fabric manager or a failed link, so that is a warning rather than a fact of life.
    """
    gpus = tuple(gpus)
    if not gpus:
        return LinkReport(gpus=(), link_type=None, notes=("no GPUs in this run (the CPU, gloo): no GPU links",))
    if facts is None or not facts.gpus:
        return LinkReport(gpus=gpus, link_type=None, notes=("no GPU facts: link type unknown",))
    by_index = {g.index: g for g in facts.gpus}
    names = tuple(by_index[i].name for i in gpus if i in by_index)
    topo = facts.topology
    affinity = {a.gpu: {"cpus": a.cpu_affinity, "numa": a.numa_affinity} for a in topo.affinity if a.gpu in gpus}
    notes: list[str] = []
    warnings: list[str] = []
    pairs: list[tuple[int, int, str]] = []
    for i, a in enumerate(gpus):
        for b in gpus[i + 1 :]:
            link = topo.link(a, b)
            pairs.append((a, b, link.kind if link else "?"))
    kinds = {kind for _, _, kind in pairs}
    if not pairs:
        link_type = None
        notes.append("one GPU on this host: no GPU-to-GPU link in use")
    elif "?" in kinds:
        link_type = None
        notes.append("`nvidia-smi topo -m` does not list every pair of these GPUs")
    elif all(kind.startswith("NV") for kind in kinds):
        link_type = "nvlink"
    elif any(kind.startswith("NV") for kind in kinds):
        link_type = "mixed"
    else:
        link_type = "pcie"
    if "SYS" in kinds:
        notes.append("some pairs cross the CPU socket interconnect (SYS): slower than PCIe within one socket")

    from svdops.judge.knowledge import find_gpu_spec

    specs = [spec for name in set(names) if (spec := find_gpu_spec(name)) is not None]
    nvlink_gen = next((s.nvlink_gen for s in specs if s.nvlink_gen), None)
    pcie_gens = [g.pcie_gen_max for i in gpus if (g := by_index.get(i)) and g.pcie_gen_max]
    pcie_gen = min(pcie_gens) if pcie_gens else None
    expects_nvlink = any(s.form_factor == "SXM" and s.nvlink_gen for s in specs)
    if expects_nvlink and link_type in ("pcie", "mixed"):
        slow = ", ".join(f"GPU{a}-GPU{b} {kind}" for a, b, kind in pairs if not kind.startswith("NV"))
        warnings.append(
            f"{names[0]} boards are built on NVLink, but these ranks talk over PCIe ({slow}); "
            "check `nvidia-smi nvlink -s` and that nvidia-fabricmanager is running"
        )
    expected = None
    if nnodes > 1:
        notes.append("ranks on several hosts: the network, not the local link, bounds the all-reduce")
    elif link_type == "nvlink":
        expected = expected_busbw("nvlink", nvlink_gen)
    elif link_type in ("pcie", "mixed"):
        expected = expected_busbw("pcie", pcie_gen)
    if link_type and expected is None and nnodes == 1:
        gen = nvlink_gen if link_type == "nvlink" else pcie_gen
        notes.append(f"no expected bus bandwidth for {link_type} generation {gen}")
    return LinkReport(
        gpus=gpus,
        link_type=link_type,
        pairs=tuple(pairs),
        nvlink_gen=nvlink_gen,
        pcie_gen=pcie_gen,
        expected=expected,
        gpu_names=names,
        affinity=affinity,
        warnings=tuple(warnings),
        notes=tuple(notes),
    )


# --- pinning -------------------------------------------------------------------------------------


def parse_cpu_list(text: str | None) -> set[int]:
    """`0-55,112-167` (as nvidia-smi topo and /sys print CPU lists) -> the CPU numbers; bad text -> empty."""
    cpus: set[int] = set()
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        low, sep, high = part.partition("-")
        try:
            first, last = int(low), int(high) if sep else int(low)
        except ValueError:
            return set()
        if first < 0 or last < first or last - first > 65536:
            return set()
        cpus.update(range(first, last + 1))
    return cpus


def pin_to_cpus(cpu_list: str | None) -> tuple[list[int] | None, str | None]:
    """Pin this process to the CPUs its GPU is NUMA-local to, within what it may already use.

    Host-to-device copies and kernel launches from a CPU on the other socket cross the socket
    interconnect; the intersection keeps a Slurm or cgroup CPU limit in force. Returns (cpus
    pinned to, None) or (None, why not).
    """
    wanted = parse_cpu_list(cpu_list)
    if not wanted:
        return None, f"no CPU affinity for this GPU ({cpu_list!r})"
    allowed = os.sched_getaffinity(0)
    chosen = wanted & allowed
    if not chosen:
        return None, f"the GPU's CPUs {cpu_list} are outside the CPUs this process may use"
    os.sched_setaffinity(0, chosen)
    return sorted(chosen), None


def format_cpu_list(cpus: Sequence[int]) -> str:
    """[0, 1, 2, 5] -> '0-2,5': the same notation the pinning was read from."""
    ranges: list[str] = []
    ordered = sorted(set(cpus))
    start = prev = None
    for cpu in [*ordered, None]:
        if cpu is not None and prev is not None and cpu == prev + 1:
            prev = cpu
            continue
        if start is not None:
            ranges.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = cpu
    return ",".join(ranges)
