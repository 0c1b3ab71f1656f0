"""Measured points -> achieved-efficiency and memory factors, and what each one rests on.

A calibration point is one measured configuration on one device: the shipped H100 anchors
(svdops/data/plan_anchors.json) or an `ok` point of a bench run. For each point:

- UNet efficiency   = roofline floor of one step / measured s per step (eager and compiled apart);
- decode efficiency = roofline floor of the decode stage / measured decode s, per decode chunk
  (smaller chunks keep the GPU less busy: 0.27 at chunk 8, 0.23 at chunk 2 on the H100);
- host seconds      = what the end-to-end time has beyond UNet, decode and the predicted CLIP and
  VAE-encode time: post-processing on the CPU, Python; taken not to depend on the GPU;
- memory factor     = (measured peak - resident weights - pipeline I/O) / counted activation peak of
  the stage that peaks (the allocator's rounding, workspaces, the odd temporary the meta count
  cannot see);
- power fraction    = average power over the power cap while the pipeline runs.

Lookups answer from the closest measurement there is, in this order, and say which one it was:
the same GPU; the same architecture; any GPU (another architecture, with a wide band). The bands
are the model's honest spread at each tier (see BANDS) and are what `plan --validate` checks.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from svdops.errors import BadInputError
from svdops.plan.costmodel import (
    CPU_DEVICE,
    Device,
    MemoryParts,
    Workload,
    anchors_document,
    device_named,
    memory_parts,
    stage_floors,
    workload_from_point,
)
from svdops.runs.store import Run, list_runs, load_run

# Relative half-widths of the uncertainty band by how far the prediction is from a measurement.
# same-gpu: run-to-run noise of a median (the anchors repeat to 0.5%; 5% leaves room for another
# host's clocks and driver). same-arch: the target `plan --validate` holds the model to (10%):
# cards of one architecture share kernels, so what differs is peak and bandwidth, which the
# roofline carries. cross-arch: other kernels, other power behaviour; 35% is a judgement, not a
# measurement, and says "bench one before you buy a fleet".
BANDS = {"same-gpu": 0.05, "same-arch": 0.10, "cross-arch": 0.35}
MEMORY_BANDS = {"same-stage": 0.08, "other-stage": 0.25}
# Added when a setting was never measured anywhere (forward chunking, offload) or a compile
# speedup is carried over from another GPU.
UNMEASURED_SETTING_BAND = 0.15
COMPILE_TRANSFER_BAND = 0.10
CHUNK_INTERPOLATION_BAND = 0.05


@dataclass(frozen=True)
class Measured:
    unet_step_s: float | None = None
    decode_s: float | None = None
    e2e_s: float | None = None
    peak_allocated_gib: float | None = None
    energy_j_per_video: float | None = None
    spread: float | None = None  # p90 / median - 1 of the UNet step, where recorded


@dataclass(frozen=True)
class CalibrationPoint:
    id: str
    device: Device
    workload: Workload
    measured: Measured
    source: str
    peak_scope: str = "video"  # "unet": the measured peak covers the UNet phase only
    power_fraction: float | None = None


@dataclass(frozen=True)
class Fitted:
    """One point's factors."""

    point: CalibrationPoint
    unet_eff: float | None
    decode_eff: float | None
    host_s: float | None
    memory_stage: str | None
    memory_factor: float | None


@dataclass(frozen=True)
class Lookup:
    value: float
    band: float
    basis: str


@dataclass
class Calibration:
    fitted: list[Fitted]
    notes: list[str] = field(default_factory=list)

    # --- what it rests on ----------------------------------------------------------------------

    @property
    def points(self) -> list[CalibrationPoint]:
        return [f.point for f in self.fitted]

    def devices(self) -> list[str]:
        return sorted({f.point.device.name for f in self.fitted})

    def describe(self) -> str:
        by_device: dict[str, int] = {}
        for f in self.fitted:
            by_device[f.point.device.name] = by_device.get(f.point.device.name, 0) + 1
        return ", ".join(f"{name} ({n} points)" for name, n in sorted(by_device.items())) or "nothing"

    # --- lookups -------------------------------------------------------------------------------

    def unet_efficiency(self, device: Device, compile: bool) -> Lookup:
        same = [(f.point.device, f.unet_eff) for f in self.fitted
                if f.unet_eff is not None and f.point.workload.compile == compile]
        found = _tiered(same, device, "UNet step")
        if found is not None:
            return found
        if compile:
            eager = _tiered([(f.point.device, f.unet_eff) for f in self.fitted
                             if f.unet_eff is not None and not f.point.workload.compile], device, "UNet step")
            speedup = self._compile_speedup()
            if eager is not None and speedup is not None:
                ratio, where = speedup
                return Lookup(eager.value * ratio, eager.band + COMPILE_TRANSFER_BAND,
                              f"{eager.basis}; torch.compile speedup {ratio:.2f}x measured on {where}")
        raise BadInputError(
            f"nothing to calibrate the UNet{' (compiled)' if compile else ''} on",
            where="svdops plan",
            hint="keep the shipped anchors (drop --no-anchors) or pass --calibrate-from a run store with GPU runs",
        )

    def _compile_speedup(self) -> tuple[float, str] | None:
        ratios, where = [], set()
        for name in self.devices():
            eager = [f.unet_eff for f in self.fitted if f.point.device.name == name and f.unet_eff is not None
                     and not f.point.workload.compile]
            compiled = [f.unet_eff for f in self.fitted if f.point.device.name == name and f.unet_eff is not None
                        and f.point.workload.compile]
            if eager and compiled:
                ratios.append(statistics.median(compiled) / statistics.median(eager))
                where.add(name)
        return (statistics.median(ratios), ", ".join(sorted(where))) if ratios else None

    def decode_efficiency(self, device: Device, chunk: int) -> Lookup:
        rows = [(f.point.device, f.point.workload.decode_chunk, f.decode_eff) for f in self.fitted
                if f.decode_eff is not None]
        for tier in _tiers(device):
            chosen = [(d, c, e) for d, c, e in rows if _in_tier(d, device, tier)]
            if not chosen:
                continue
            by_chunk: dict[int, list[float]] = {}
            for _, c, e in chosen:
                by_chunk.setdefault(c, []).append(e)
            chunks = sorted(by_chunk)
            medians = {c: statistics.median(v) for c, v in by_chunk.items()}
            where = _where(d for d, _, _ in chosen)
            band = _tier_band(tier, [e for _, _, e in chosen])
            if chunk in medians:
                return Lookup(medians[chunk], band, f"decode chunk {chunk} on {where}")
            lower = [c for c in chunks if c < chunk]
            upper = [c for c in chunks if c > chunk]
            if lower and upper:
                lo, hi = lower[-1], upper[0]
                t = (math.log2(chunk) - math.log2(lo)) / (math.log2(hi) - math.log2(lo))
                value = medians[lo] + t * (medians[hi] - medians[lo])
                return Lookup(value, band + CHUNK_INTERPOLATION_BAND,
                              f"decode chunks {lo} and {hi} on {where}, interpolated")
            nearest = lower[-1] if lower else upper[0]
            return Lookup(medians[nearest], band + CHUNK_INTERPOLATION_BAND,
                          f"decode chunk {nearest} on {where} (chunk {chunk} never measured)")
        raise BadInputError("nothing to calibrate the VAE decode on", where="svdops plan",
                            hint="calibrate on runs that decode (full pipeline runs), or keep the anchors")

    def host_seconds(self, device: Device) -> Lookup:
        rows = [(f.point.device, f.host_s) for f in self.fitted if f.host_s is not None]
        found = _tiered(rows, device, "host time", absolute=True)
        if found is None:
            return Lookup(0.0, 0.0, "no end-to-end measurement: host time taken as 0")
        return found

    def memory_factor(self, stage: str, compile: bool) -> Lookup:
        rows = [f for f in self.fitted if f.memory_factor is not None]
        exact = [f.memory_factor for f in rows if f.memory_stage == stage and f.point.workload.compile == compile
                 and f.memory_factor is not None]
        if exact:
            return Lookup(statistics.median(exact), MEMORY_BANDS["same-stage"],
                          f"{stage} peak measured on {_where(f.point.device for f in rows if f.memory_stage == stage)}")
        others = [f.memory_factor for f in rows if f.point.workload.compile == compile and f.memory_factor is not None]
        others = others or [f.memory_factor for f in rows if f.memory_factor is not None]
        if others:
            return Lookup(max(others), MEMORY_BANDS["other-stage"],
                          f"no {stage} peak measured: the largest factor of the other stages")
        return Lookup(1.0, MEMORY_BANDS["other-stage"] * 2, "no peak measured: counted activations as they are")

    def power_fraction(self, device: Device) -> Lookup | None:
        rows = [(f.point.device, f.point.power_fraction) for f in self.fitted if f.point.power_fraction is not None]
        return _tiered(rows, device, "power")


def _tiers(device: Device) -> tuple[str, ...]:
    return ("same-gpu", "same-arch", "cross-arch")


def _in_tier(measured: Device, target: Device, tier: str) -> bool:
    if measured.is_gpu != target.is_gpu and tier != "cross-arch":
        return False
    if tier == "same-gpu":
        return measured.name == target.name
    if tier == "same-arch":
        return measured.arch == target.arch and measured.name != target.name
    # Never carry CPU factors onto a GPU: the CPU's nominal peak is a placeholder.
    return measured.is_gpu or not target.is_gpu


def _where(devices: Iterable[Device]) -> str:
    return ", ".join(sorted({d.name for d in devices}))


def _tier_band(tier: str, values: Sequence[float]) -> float:
    band = BANDS[tier]
    if len(values) > 1 and tier != "same-gpu":
        # more scatter between the measured GPUs than the tier's band: show it
        mid = statistics.median(values)
        band = max(band, max(abs(v / mid - 1) for v in values))
    return band


def _tiered(rows: Sequence[tuple[Device, float | None]], device: Device, what: str,
            absolute: bool = False) -> Lookup | None:
    for tier in _tiers(device):
        chosen = [(d, v) for d, v in rows if v is not None and _in_tier(d, device, tier)]
        if not chosen:
            continue
        # one vote per device, so a store with many runs of one card does not outvote the rest
        per_device: dict[str, list[float]] = {}
        for d, v in chosen:
            per_device.setdefault(d.name, []).append(float(v))
        values = [statistics.median(v) for v in per_device.values()]
        where = ", ".join(sorted(per_device))
        if tier == "same-gpu":
            basis = f"measured on {where}"
        elif tier == "same-arch":
            basis = f"{device.arch}, measured on {where}"
        else:
            archs = ", ".join(sorted({d.arch for d, _ in chosen}))
            basis = f"transferred from {archs} ({where}): no {device.arch} measurement"
        return Lookup(statistics.median(values), 0.0 if absolute else _tier_band(tier, values), basis)
    return None


# --- fitting -----------------------------------------------------------------------------------


def fit_point(point: CalibrationPoint) -> Fitted:
    w, m = point.workload, point.measured
    floors = stage_floors(w, point.device)
    unet_eff = floors["unet"].floor_s / w.steps / m.unet_step_s if m.unet_step_s else None
    decode_eff = floors["decode"].floor_s / m.decode_s if m.decode_s else None
    host = None
    if m.e2e_s and m.unet_step_s and m.decode_s and unet_eff:
        gpu_other = (floors["encode"].floor_s + floors["clip"].floor_s) / unet_eff
        host = max(0.0, m.e2e_s - w.steps * m.unet_step_s - m.decode_s - gpu_other)
    stage, factor = None, None
    if m.peak_allocated_gib is not None and point.device.is_gpu:
        stage, factor = _memory_fit(memory_parts(w), m.peak_allocated_gib, point.peak_scope)
    return Fitted(point, unet_eff, decode_eff, host, stage, factor)


def _memory_fit(parts: MemoryParts, peak_gib: float, scope: str) -> tuple[str, float]:
    # the stage whose counted need is largest is taken to set the measured peak
    candidates = ["unet"] if scope == "unet" else list(parts.activation_gib)
    stage = max(candidates, key=lambda s: parts.resident_gib[s] + parts.activation_gib[s])
    factor = (peak_gib - parts.resident_gib[stage] - parts.io_gib) / parts.activation_gib[stage]
    return stage, factor


def calibrate(points: Sequence[CalibrationPoint], notes: Sequence[str] = ()) -> Calibration:
    return Calibration([fit_point(p) for p in points], list(notes))


# --- sources of points -------------------------------------------------------------------------


def anchor_points() -> list[CalibrationPoint]:
    """The shipped H100 SXM measurements as calibration points."""
    doc = anchors_document()
    power = {row["device"]: row["median_power_w"] / row["power_cap_w"] for row in doc.get("power", [])}
    points = []
    for row in doc["points"]:
        device = device_named(row["device"])
        if device is None:  # pragma: no cover - a broken data file, caught by the tests
            raise BadInputError(f"unknown device {row['device']!r}", where="svdops/data/plan_anchors.json")
        measured = Measured(**{k: float(v) for k, v in row["measured"].items() if k in Measured.__dataclass_fields__})
        points.append(CalibrationPoint(
            id=f"anchor:{row['id']}", device=device, workload=workload_from_point(row["workload"]),
            measured=measured, source=row["source"], peak_scope=row.get("peak_scope", "video"),
            power_fraction=power.get(row["device"]),
        ))
    return points


def resolve_runs(paths: Iterable[str | Path]) -> list[Run]:
    """Run folders, or stores of them, in the order given."""
    runs: list[Run] = []
    for raw in paths:
        path = Path(raw)
        if (path / "results.json").is_file():
            runs.append(load_run(path))
        elif path.is_dir():
            found = list_runs(path)
            if not found:
                raise BadInputError("no runs in this folder", where=str(path),
                                    hint="pass a run store (svdops bench --store DIR) or a run folder inside it")
            runs.extend(found)
        else:
            raise BadInputError("no such run folder or store", where=str(path),
                                hint="pass a folder written by `svdops bench`")
    return runs


def run_points(run: Run) -> tuple[list[CalibrationPoint], list[str]]:
    """A run's usable points, and a note for each one left out (and why)."""
    points: list[CalibrationPoint] = []
    notes: list[str] = []
    gpu = run.results.gpu
    device = device_named(gpu)
    if device is None:
        return [], [f"{run.name}: GPU {gpu!r} is not in svdops/judge/knowledge/gpus.yaml; add a row to plan with it"]
    for entry in run.results.ok_points():
        config = entry.config
        summary = entry.summary
        label = f"{run.name}#{entry.point or 0}"
        try:
            workload = workload_from_point(config)
        except (KeyError, TypeError, ValueError):
            notes.append(f"{label}: config lacks the shape fields; left out")
            continue
        if device.is_gpu and workload.dtype == "fp32":
            notes.append(f"{label}: fp32 on a GPU has no tensor-core peak in the table; left out")
            continue
        step = summary.median("unet_step")
        if step is None:
            notes.append(f"{label}: no UNet step time; left out")
            continue
        p90 = summary.unet_step_s.p90 if summary.unet_step_s else None
        e2e = summary.median("e2e")
        energy = summary.energy_j_per_video
        fraction = None
        if energy and e2e and device.power_w:
            fraction = float(energy) * workload.videos_per_call / e2e / device.power_w  # mean W over the cap
        points.append(CalibrationPoint(
            id=label, device=device, workload=workload,
            measured=Measured(
                unet_step_s=step, decode_s=summary.median("decode"), e2e_s=e2e,
                peak_allocated_gib=summary.peak_allocated_gib,
                energy_j_per_video=energy, spread=(p90 / step - 1) if p90 else None,
            ),
            source=str(run.path), power_fraction=fraction,
        ))
    return points, notes


def gather_points(runs: Sequence[Run], *, anchors: bool = True) -> tuple[list[CalibrationPoint], list[str]]:
    points = anchor_points() if anchors else []
    notes: list[str] = []
    for run in runs:
        found, why = run_points(run)
        points.extend(found)
        notes.extend(why)
    return points, notes


def default_calibration(runs: Sequence[Run] = (), *, anchors: bool = True) -> Calibration:
    points, notes = gather_points(runs, anchors=anchors)
    if not points:
        raise BadInputError("nothing to calibrate on", where="svdops plan",
                            hint="keep the shipped anchors or pass --calibrate-from RUNS with ok GPU points")
    return calibrate(points, notes)


__all__ = [
    "BANDS",
    "CPU_DEVICE",
    "Calibration",
    "CalibrationPoint",
    "Fitted",
    "Lookup",
    "Measured",
    "anchor_points",
    "calibrate",
    "default_calibration",
    "gather_points",
    "resolve_runs",
    "run_points",
]
