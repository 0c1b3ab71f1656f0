"""Measured points -> achieved-efficiency and memory factors, and what each one rests on.

A calibration point is one measured configuration on one device: the shipped H100 anchors
(svdops/data/plan_anchors.json), an `ok` point of a bench run, or a public measurement from
svdops/data/plan_validation.yaml that reports a UNet step time. For each point, per op class:

- memory-bound ops (norms, activations, adds, copies) run at MEMORY_EFFICIENCY of the datasheet
  bandwidth: an assumption (large eager elementwise kernels), not fitted, because one stage time
  cannot separate two efficiencies;
- UNet compute efficiency = (matmul/conv + attention floor at the sustained clock) / (measured s
  per step - memory-bound time); eager and compiled apart. Attention shares it: a stage time cannot
  tell the attention kernels from the GEMMs (a profiler trace could; none is calibrated here);
- decode efficiency, the same for the decode stage, per decode chunk;
- host seconds      = what the end-to-end time has beyond UNet, decode and the predicted CLIP and
  VAE-encode time: post-processing on the CPU, Python; fitted as a line in the frame count (the
  frames are converted to images one by one) and taken not to depend on the GPU;

Runs that --optimize, quantise (fp8) or otherwise change the kernels never calibrate the eager
model: they are left out with a note (compiled runs calibrate the compiled UNet only).

Across architectures the compute efficiency is carried with a peak law: a card with a lower
sustained peak reaches a larger share of it (the same kernels finish nearer their roofline when
the roofline is lower), eff = eff_measured x (peak_measured / peak_target) ** PEAK_EXPONENT, the
exponent fitted over the calibrated devices where there are two or more with different peaks, and
0 (no scaling) otherwise.
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
    StageFloor,
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
# Memory-bound eager kernels (elementwise, norms) on large tensors: share of datasheet bandwidth (assumed).
MEMORY_EFFICIENCY = 0.85
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
    assumed: tuple[str, ...] = ()  # settings the source did not state (public measurements)


def compute_efficiency(floor: StageFloor, measured_s: float) -> float | None:
    """Share of the sustained compute peak reached, once the memory-bound ops are paid at
    MEMORY_EFFICIENCY of the bandwidth; None when the memory-bound time alone exceeds the measurement."""
    rest = measured_s - floor.memory_s / MEMORY_EFFICIENCY
    if rest <= 0 or floor.compute_s <= 0:
        return None
    return floor.compute_s / rest


def stage_seconds(floor: StageFloor, compute_eff: float) -> float:
    return floor.compute_s / compute_eff + floor.memory_s / MEMORY_EFFICIENCY


def per_call(floor: StageFloor, calls: int) -> StageFloor:
    return StageFloor(floor.stage, floor.floor_s / calls, floor.flops // calls, floor.calls,
                      {k: v / calls for k, v in floor.parts.items()})


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
    # tier -> (band, held-out points behind it), from plan --validate's leave-one-out (validate.py)
    bands: dict[str, tuple[float, int]] = field(default_factory=dict)

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

    def peak_exponent(self) -> tuple[float, str]:
        """The exponent of the peak law, fitted on the eager UNet efficiencies of the calibrated GPUs."""
        per_device: dict[str, tuple[float, list[float]]] = {}
        for f in self.fitted:
            if f.unet_eff is None or f.point.workload.compile or not f.point.device.is_gpu:
                continue
            peak = f.point.device.sustained_peak(f.point.workload.dtype)
            per_device.setdefault(f.point.device.name, (peak, []))[1].append(f.unet_eff)
        xs = [math.log(p) for p, _ in per_device.values()]
        ys = [math.log(statistics.median(v)) for _, v in per_device.values()]
        if len(xs) < 2 or max(xs) - min(xs) < 0.05:
            return 0.0, "one calibrated peak: efficiency carried as measured"
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
        alpha = min(1.0, max(0.0, -slope))
        return alpha, f"efficiency ~ peak^-{alpha:.2f}, fitted on {', '.join(sorted(per_device))}"

    def unet_efficiency(self, device: Device, compile: bool) -> Lookup:
        alpha, _ = self.peak_exponent()
        target = device.sustained_peak(next(iter(device.peak_tflops))) if device.peak_tflops else 1.0
        same = [(f.point.device, _carried(f.unet_eff, f.point.device, device, alpha, f.point.workload.dtype, target))
                for f in self.fitted if f.unet_eff is not None and f.point.workload.compile == compile]
        found = _tiered(same, device, "UNet step", bands=self.bands)
        if found is not None:
            return found
        if compile:
            eager = _tiered([(f.point.device, _carried(f.unet_eff, f.point.device, device, alpha,
                                                       f.point.workload.dtype, target))
                             for f in self.fitted if f.unet_eff is not None and not f.point.workload.compile],
                            device, "UNet step", bands=self.bands)
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
        alpha, _ = self.peak_exponent()
        target = device.sustained_peak(next(iter(device.peak_tflops))) if device.peak_tflops else 1.0
        rows: list[tuple[Device, int, float]] = []
        for f in self.fitted:
            carried = _carried(f.decode_eff, f.point.device, device, alpha, f.point.workload.dtype, target)
            if carried is not None:
                rows.append((f.point.device, f.point.workload.decode_chunk, carried))
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
            band = _tier_band(tier, [e for _, _, e in chosen], self.bands)
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

    def host_seconds(self, device: Device, frames: int = 25) -> Lookup:
        """CPU-side seconds per video as a line in the frame count, fitted on every GPU point with an
        end-to-end time (the host does not depend on the GPU); proportional to frames from one count."""
        rows = [(f.point.workload.frames * f.point.workload.videos_per_call, f.host_s) for f in self.fitted
                if f.host_s is not None and f.point.device.is_gpu == device.is_gpu]
        if not rows:
            return Lookup(0.0, 0.0, "no end-to-end measurement: host time taken as 0")
        xs = [float(x) for x, _ in rows]
        ys = [float(y) for _, y in rows]
        if len(set(xs)) >= 2:
            mx, my = statistics.fmean(xs), statistics.fmean(ys)
            slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
            slope = max(0.0, slope)
            value = max(0.0, my + slope * (frames - mx))
            return Lookup(value, 0.0, f"{slope:.3f} s per frame, fitted on {len(rows)} end-to-end points")
        per_frame = statistics.median(y / x for x, y in zip(xs, ys, strict=True) if x)
        return Lookup(per_frame * frames, 0.0, f"{per_frame:.3f} s per frame from {int(xs[0])}-frame runs")

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


def energy_floor_s(calibration: Calibration, device: Device, workload: Workload) -> tuple[float, str] | None:
    """A power-bound card cannot run a UNet step faster than its energy allows: the step's energy,
    measured on a card of the same die (median power x step time), scaled by the work and by the
    square of the clock (energy per operation goes as V^2, and V tracks f), over this card's cap.
    None when the card is not power-bound or no same-die point recorded its power."""
    from svdops.plan.clocks import clock_rows
    from svdops.plan.costmodel import unet_step_flops

    rows = clock_rows()
    die = rows.get(device.name, {}).get("die")
    if not device.clocks.power_bound or not die or not device.power_w:
        return None
    if any(f.point.device.name == device.name and f.unet_eff is not None for f in calibration.fitted):
        return None  # measured on this very card: its own step time says it all
    for f in calibration.fitted:
        p = f.point
        if (rows.get(p.device.name, {}).get("die") != die or p.power_fraction is None or not p.measured.unet_step_s
                or p.workload.compile != workload.compile or not p.device.power_w):
            continue
        joules = p.power_fraction * p.device.power_w * p.measured.unet_step_s
        work = unet_step_flops(workload) / unet_step_flops(p.workload)
        ref_mhz = p.device.clocks.sustained_mhz or p.device.clocks.fraction
        own_mhz = device.clocks.sustained_mhz or device.clocks.fraction
        joules *= work * (own_mhz / ref_mhz) ** 2
        watts = p.power_fraction * p.device.power_w
        return joules / device.power_w, (f"energy floor: {joules:.0f} J per step (from {p.device.name} at "
                                          f"{watts:.0f} W) over a {device.power_w:.0f} W cap")
    return None


def _carried(eff: float | None, measured: Device, target: Device, alpha: float, dtype: str,
             target_peak: float) -> float | None:
    """A measured compute efficiency carried to another card's sustained peak by the peak law."""
    if eff is None or not alpha or measured.name == target.name or not (measured.is_gpu and target.is_gpu):
        return eff
    return float(min(0.95, eff * (measured.sustained_peak(dtype) / target_peak) ** alpha))


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


def _tier_band(tier: str, values: Sequence[float], bands: dict[str, tuple[float, int]] | None = None) -> float:
    band = BANDS[tier]
    if bands and tier in bands and bands[tier][1] > 0:
        band = bands[tier][0]  # the leave-one-out spread, not the judged figure
    if len(values) > 1 and tier != "same-gpu":
        # more scatter between the measured GPUs than the tier's band: show it
        mid = statistics.median(values)
        band = max(band, max(abs(v / mid - 1) for v in values))
    return band


def _tiered(rows: Sequence[tuple[Device, float | None]], device: Device, what: str,
            absolute: bool = False, bands: dict[str, tuple[float, int]] | None = None) -> Lookup | None:
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
        if bands and tier in bands and bands[tier][1] > 0:
            basis += f"; band from {bands[tier][1]} held-out points"
        elif tier != "same-gpu" and not absolute:
            basis += "; band judged (no held-out point at this tier)"
        return Lookup(statistics.median(values), 0.0 if absolute else _tier_band(tier, values, bands), basis)
    return None


# --- fitting -----------------------------------------------------------------------------------


def fit_point(point: CalibrationPoint) -> Fitted:
    w, m = point.workload, point.measured
    floors = stage_floors(w, point.device)
    unet_eff = compute_efficiency(per_call(floors["unet"], w.steps), m.unet_step_s) if m.unet_step_s else None
    decode_eff = compute_efficiency(floors["decode"], m.decode_s) if m.decode_s else None
    host = None
    if m.e2e_s and m.unet_step_s and m.decode_s and unet_eff and not w.cpu_offload:
        gpu_other = stage_seconds(floors["encode"], unet_eff) + stage_seconds(floors["clip"], unet_eff)
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
    run_optimized = optimized_reason(run)
    for entry in run.results.ok_points():
        config = entry.config
        summary = entry.summary
        label = f"{run.name}#{entry.point or 0}"
        why = run_optimized or _point_optimized(config)
        if why:
            notes.append(f"{label}: {why}: never calibrates the eager model; left out")
            continue
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


def optimized_reason(run: Run) -> str | None:
    """Why a run's kernels are not eager PyTorch's (--optimize recorded in its config or results)."""
    for record, where in ((run.config.optimize, "config.json"), (run.results.optimize, "results.json")):
        level = str(record.level or "").lower() if record is not None else ""
        if record is not None and (record.applied or level not in ("", "none", "off", "false", "0")):
            applied = ", ".join(str(a) for a in record.applied[:4]) or record.level or "levers"
            return f"optimized run ({where} optimize: {applied})"
    request = run.config.request if isinstance(run.config.request, dict) else {}
    if str(request.get("optimize") or "").lower() not in ("", "none", "off", "false", "0"):
        return f"optimized run (config.json request optimize={request.get('optimize')!r})"
    return None


def _point_optimized(config: dict[str, object]) -> str | None:
    if str(config.get("optimize") or "").lower() not in ("", "none", "off", "false", "0"):
        return f"optimized point (optimize={config.get('optimize')!r})"
    dtype = str(config.get("dtype", ""))
    if dtype.startswith("fp8") or config.get("quantize") or config.get("fp8"):
        return f"quantized point (dtype {dtype or 'fp8'})"
    return None


def gather_points(runs: Sequence[Run], *, anchors: bool = True) -> tuple[list[CalibrationPoint], list[str]]:
    points = anchor_points() if anchors else []
    notes: list[str] = []
    for run in runs:
        found, why = run_points(run)
        points.extend(found)
        notes.extend(why)
    return points, notes


def default_calibration(runs: Sequence[Run] = (), *, anchors: bool = True,
                        extra: Sequence[CalibrationPoint] = ()) -> Calibration:
    """Anchors (unless not wanted), the runs' points and `extra` ones (public measurements:
    predict.planning_calibration adds the shipped ones)."""
    points, notes = gather_points(runs, anchors=anchors)
    points.extend(extra)
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
    "optimized_reason",
    "resolve_runs",
    "run_points",
]
