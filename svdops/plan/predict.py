"""Predictions for one workload on one device (or a box of N), with bands and their basis.

    stage time = roofline floor / calibrated efficiency        (calibrate.py picks the closest)
    e2e        = steps x UNet step + decode + CLIP + encode + host time (+ offload copies)
    peak       = resident weights + I/O + factor x counted activations of the peaking stage
    energy     = power cap x measured power fraction x e2e
    box        = N cards x 3600 / e2e x scaling efficiency (one pipeline per GPU)

A card that does not fit is searched for the cheapest setting that does: smaller decode chunks
first (seconds), then UNet forward chunking, then model CPU offload (weights cross PCIe every video).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from svdops.errors import BadInputError
from svdops.judge import knowledge as kb
from svdops.plan.calibrate import (
    UNMEASURED_SETTING_BAND,
    Calibration,
    Lookup,
    calibrate,
    default_calibration,
    energy_floor_s,
    gather_points,
    per_call,
    run_points,
    stage_seconds,
)
from svdops.plan.clocks import host_copy, software_support
from svdops.plan.costmodel import (
    PCIE_GBPS,
    Device,
    StageFloor,
    Workload,
    device_from_spec,
    memory_parts,
    stage_floors,
)
from svdops.plan.public import calibration_points
from svdops.runs.store import Run

# Fit verdicts: "yes" when even the top of the band fits, "tight" when only the estimate does.
FITS, TIGHT, NO = "yes", "tight", "no"
# A multi-GPU box runs one pipeline per GPU; nothing is shared but the host. Until a multi-GPU
# bench measures it (a run's results.json `scaling: {gpus, efficiency}`), this is an assumption.
ASSUMED_SCALING = 1.0


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float
    basis: str

    @classmethod
    def banded(cls, value: float, band: float, basis: str) -> Estimate:
        return cls(value, value * (1 - band), value * (1 + band), basis)

    @property
    def band(self) -> float:
        return (self.high - self.low) / 2 / self.value if self.value else 0.0

    def scaled(self, k: float) -> Estimate:
        return Estimate(self.value * k, self.low * k, self.high * k, self.basis)


@dataclass(frozen=True)
class StagePrediction:
    unet_step_s: Estimate
    decode_s: Estimate
    other_s: Estimate  # CLIP + VAE encode + host time + offload copies
    e2e_s: Estimate
    peak_allocated_gib: Estimate
    peak_stage: str


@dataclass(frozen=True)
class Prediction:
    device: Device
    workload: Workload  # what runs: the asked one, or the setting that makes it fit
    asked: Workload
    count: int
    stages: StagePrediction
    fits: str  # yes | tight | no (of `workload`)
    fits_as_asked: str
    change: str | None  # what was changed to fit, e.g. "decode chunk 2"
    change_cost_s: float | None  # e2e seconds the change adds per video
    videos_per_hour: Estimate  # the box
    usd_per_1000_videos: Estimate | None
    energy_j_per_video: Estimate | None
    scaling: float
    scaling_basis: str
    calibrated_on: str
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types: one row of `svdops plan --format json`."""
        def est(e: Estimate | None) -> dict[str, Any] | None:
            return None if e is None else {"value": e.value, "low": e.low, "high": e.high, "basis": e.basis}

        s = self.stages
        return {
            "gpu": self.device.name,
            "arch": self.device.arch,
            "count": self.count,
            "memory_gb": self.device.memory_gb,
            "price_usd_per_hour": self.device.price_usd_per_hour,
            "power_w": self.device.power_w,
            "power_bound": self.device.clocks.power_bound,
            "sustained_mhz": self.device.clocks.sustained_mhz,
            "clock_basis": self.device.clocks.basis,
            "fits": self.fits,
            "fits_as_asked": self.fits_as_asked,
            "change": self.change,
            "change_cost_s": self.change_cost_s,
            "workload": asdict(self.workload),
            "unet_step_s": est(s.unet_step_s),
            "decode_s": est(s.decode_s),
            "other_s": est(s.other_s),
            "e2e_s": est(s.e2e_s),
            "peak_allocated_gib": est(s.peak_allocated_gib),
            "peak_stage": s.peak_stage,
            "videos_per_hour": est(self.videos_per_hour),
            "usd_per_1000_videos": est(self.usd_per_1000_videos),
            "energy_j_per_video": est(self.energy_j_per_video),
            "scaling_efficiency": self.scaling,
            "scaling_basis": self.scaling_basis,
            "calibrated_on": self.calibrated_on,
            "notes": list(self.notes),
        }


def _sum(parts: Sequence[Estimate], basis: str) -> Estimate:
    # Bands add up (fully correlated): stage errors share a cause, the efficiency transfer.
    return Estimate(sum(p.value for p in parts), sum(p.low for p in parts), sum(p.high for p in parts), basis)


def _efficiency_estimate(floor: StageFloor, found: Lookup, extra_band: float = 0.0) -> Estimate:
    return Estimate.banded(stage_seconds(floor, found.value), found.band + extra_band, found.basis)


def planning_calibration(runs: Sequence[Run] = (), *, anchors: bool = True) -> Calibration:
    """What `svdops plan` calibrates on: the shipped anchors and the public rows marked `calibrate`
    in svdops/data/plan_validation.yaml (both shipped data, both off with anchors=False), and the runs."""
    return default_calibration(runs, anchors=anchors, extra=calibration_points() if anchors else ())


def predict_stages(w: Workload, device: Device, calibration: Calibration) -> StagePrediction:
    """Per-video times and the peak for one configuration on one device."""
    floors = stage_floors(w, device)
    unet_found = calibration.unet_efficiency(device, w.compile)
    unmeasured = 0.0
    measured_settings = {(p.workload.forward_chunking, p.workload.cpu_offload) for p in calibration.points}
    if (w.forward_chunking, w.cpu_offload) not in measured_settings:
        unmeasured = UNMEASURED_SETTING_BAND
    step = _efficiency_estimate(per_call(floors["unet"], w.steps), unet_found, unmeasured)
    floor = energy_floor_s(calibration, device, w)
    if floor is not None and floor[0] > step.value:
        step = Estimate.banded(floor[0], step.band, f"{step.basis}; {floor[1]}")
    decode = _efficiency_estimate(floors["decode"], calibration.decode_efficiency(device, w.decode_chunk))
    encode, clip = floors["encode"], floors["clip"]
    other_floor = StageFloor("other", encode.floor_s + clip.floor_s, encode.flops + clip.flops, (),
                             {k: encode.parts.get(k, 0.0) + clip.parts.get(k, 0.0) for k in encode.parts})
    gpu_other = _efficiency_estimate(other_floor, unet_found)
    host = calibration.host_seconds(device, w.frames * w.videos_per_call)
    others = [gpu_other, Estimate.banded(host.value, 0.25, f"host time {host.basis}")]
    if w.cpu_offload:
        others.append(_offload_copy(w, device))
    other = _sum(others, "CLIP + VAE encode + host" + (" + offload copies" if w.cpu_offload else ""))
    e2e = _sum([step.scaled(w.steps), decode, other], unet_found.basis)
    peak, stage = predict_peak(w, calibration)
    return StagePrediction(step, decode, other, e2e, peak, stage)


def _offload_copy(workload: Workload, device: Device) -> Estimate:
    """Weights host -> GPU once per pipeline call (enable_model_cpu_offload moves each network on when
    it runs; moving it off is a free of GPU memory plus the CPU copy it keeps, not a transfer)."""
    parts = memory_parts(workload)
    copy = host_copy()
    gen = device.pcie_gen or 4
    dma = PCIE_GBPS.get(gen, PCIE_GBPS[4]) * float(copy["dma_link_fraction"])
    staging = float(copy["staging_gbps"])
    gbps = min(dma, staging)
    seconds = sum(parts.weights_gib.values()) * 2**30 / (gbps * 1e9) / workload.videos_per_call
    # low: a server's staging copy is up to ~2x this VM's; high: the measured rate as it is, +25%
    return Estimate(seconds, seconds * 0.5, seconds * 1.25,
                    f"weights at {gbps:.1f} GB/s: the slower of the measured staging copy ({staging:.1f} GB/s, "
                    f"dev VM) and {float(copy['dma_link_fraction']):.0%} of PCIe gen {gen} (assumed)")


def predict_peak(workload: Workload, calibration: Calibration) -> tuple[Estimate, str]:
    parts = memory_parts(workload)
    best: tuple[Estimate, str] | None = None
    for stage, act in parts.activation_gib.items():
        found = calibration.memory_factor(stage, workload.compile)
        unmeasured = (workload.forward_chunking and stage == "unet") or workload.cpu_offload
        band = found.band + (UNMEASURED_SETTING_BAND if unmeasured else 0.0)
        base = parts.resident_gib[stage] + parts.io_gib
        est = Estimate(base + act * found.value, base + act * found.value * (1 - band),
                       base + act * found.value * (1 + band), found.basis)
        if best is None or est.value > best[0].value:
            best = (est, stage)
    assert best is not None
    return best


def fit_verdict(peak: Estimate, device: Device) -> str:
    if not device.is_gpu:
        return FITS
    if peak.high <= device.usable_gib:
        return FITS
    if peak.value <= device.usable_gib:
        return TIGHT
    return NO


def fit_candidates(workload: Workload) -> list[tuple[str, Workload]]:
    """Settings that lower the peak, roughly cheapest first."""
    out: list[tuple[str, Workload]] = []
    for chunk in (4, 2, 1):
        if chunk < workload.decode_chunk:
            out.append((f"decode chunk {chunk}", workload.replace(decode_chunk=chunk)))
    if not workload.forward_chunking:
        for chunk in sorted({min(workload.decode_chunk, 2), 1}, reverse=True):
            out.append((f"forward chunking + decode chunk {chunk}",
                        workload.replace(forward_chunking=True, decode_chunk=chunk)))
    if not workload.cpu_offload:
        for chunk in sorted({min(workload.decode_chunk, 2), 1}, reverse=True):
            out.append((f"model CPU offload + forward chunking + decode chunk {chunk}",
                        workload.replace(cpu_offload=True, forward_chunking=True, decode_chunk=chunk)))
    return out


def predict(w: Workload, device: Device, calibration: Calibration, *, count: int = 1,
            scaling: tuple[float, str] | None = None) -> Prediction:
    """One card (or a box of `count`) running `w`, or the cheapest setting of it that fits."""
    asked = predict_stages(w, device, calibration)
    verdict = fit_verdict(asked.peak_allocated_gib, device)
    chosen, stages, change, cost = w, asked, None, None
    notes: list[str] = []
    if verdict == NO:
        options = []
        for label, candidate in fit_candidates(w):
            predicted = predict_stages(candidate, device, calibration)
            if fit_verdict(predicted.peak_allocated_gib, device) != NO:
                options.append((fit_verdict(predicted.peak_allocated_gib, device) == TIGHT,
                                predicted.e2e_s.value, label, candidate, predicted))
        if options:
            _, _, change, chosen, stages = min(options, key=lambda o: (o[0], o[1]))
            cost = stages.e2e_s.value - asked.e2e_s.value
        else:
            notes.append("does not fit even with model CPU offload, forward chunking and decode chunk 1")
    fits = fit_verdict(stages.peak_allocated_gib, device)
    scale, scale_basis = scaling or (ASSUMED_SCALING, "assumed: one pipeline per GPU, nothing shared "
                                     "(no multi-GPU measurement calibrated)")
    if count == 1:
        scale, scale_basis = 1.0, "one GPU"
    e2e = stages.e2e_s
    videos = Estimate(count * scale * 3600 / e2e.value, count * scale * 3600 / e2e.high,
                      count * scale * 3600 / e2e.low, e2e.basis)
    usd = None
    if device.price_usd_per_hour is not None:
        per_video = device.price_usd_per_hour * count * 1000
        usd = Estimate(per_video / videos.value, per_video / videos.high, per_video / videos.low,
                       f"USD {device.price_usd_per_hour:.2f}/h per GPU")
    energy = None
    fraction = calibration.power_fraction(device)
    if device.power_w and fraction is not None:
        # energy per video on each card: the box only multiplies videos and joules alike
        watts = device.power_w * fraction.value
        band_w = fraction.band
        energy = Estimate(watts * e2e.value, watts * (1 - band_w) * e2e.low,
                          min(device.power_w, watts * (1 + band_w)) * e2e.high,
                          f"{device.power_w:.0f} W cap x {fraction.value:.2f} ({fraction.basis})")
    if fits == NO:
        notes.append("predicted peak exceeds the card's memory")
    support = software_support(device.name) if device.is_gpu else None
    if support is not None and not support.runs_on_current_wheels:
        notes.append(f"current PyTorch wheels cannot run on it: {support.reason}; last that can: "
                     f"{support.last_software or 'none recorded'}")
    if device.clocks.power_bound:
        notes.append(f"power-bound on this workload: {device.clocks.basis}")
    return Prediction(
        device=device, workload=chosen, asked=w, count=count, stages=stages, fits=fits, fits_as_asked=verdict,
        change=change, change_cost_s=cost, videos_per_hour=videos, usd_per_1000_videos=usd,
        energy_j_per_video=energy, scaling=scale, scaling_basis=scale_basis, calibrated_on=calibration.describe(),
        notes=tuple(notes),
    )


# --- the card list -----------------------------------------------------------------------------


def select_devices(names: Sequence[str] | None, prices: Mapping[str, float] | None = None) -> list[Device]:
    """Every table GPU, or the named ones (nvidia-smi or table names, comma lists allowed)."""
    prices = prices or {}
    specs = kb.gpu_specs()
    if names:
        wanted = [n.strip() for raw in names for n in raw.split(",") if n.strip()]
        chosen = []
        for name in wanted:
            spec = kb.find_gpu_spec(name)
            if spec is None:
                raise BadInputError(f"unknown GPU {name!r}", where="--gpus",
                                    hint="known: " + ", ".join(s.name for s in specs))
            if spec not in chosen:
                chosen.append(spec)
        specs = tuple(chosen)
    return [device_from_spec(s, prices.get(s.name)) for s in specs]


def rank(predictions: Sequence[Prediction]) -> list[Prediction]:
    """Cards that run first, fastest box first; ties go to the cheaper per video."""
    def key(p: Prediction) -> tuple[int, float, float]:
        usd = p.usd_per_1000_videos.value if p.usd_per_1000_videos else float("inf")
        return (1 if p.fits == NO else 0, -p.videos_per_hour.value, usd)

    return sorted(predictions, key=key)


def measured_scaling(runs: Sequence[Run], count: int) -> tuple[float, str] | None:
    """The scaling efficiency a multi-GPU bench recorded for this GPU count, where one exists."""
    found = []
    for run in runs:
        # world_size is the GPU count the multi-GPU bench ran on (drafts called it `gpus`; read as such).
        scaling = run.results.scaling
        if scaling is not None and scaling.world_size == count and scaling.efficiency:
            found.append((float(scaling.efficiency), run.name))
    if not found:
        return None
    value = sorted(v for v, _ in found)[len(found) // 2]
    return value, f"measured on {count} GPUs in {', '.join(name for _, name in found)}"


# --- for the report ----------------------------------------------------------------------------


def predict_for_runs(runs: Sequence[Run], *, anchors: bool = True) -> list[dict[str, Any]]:
    """Predicted beside measured, one row per `ok` point of each run (for `svdops report`).

    Each point is predicted from a calibration that leaves its own run out (the anchors plus the
    other runs), so a run is never predicted from itself. Rows are plain dicts:
    `pandas.DataFrame(predict_for_runs(runs))` gives the table. Columns: run, point, gpu, arch,
    workload (label), then for each of unet_step_s, decode_s, e2e_s, peak_allocated_gib,
    energy_j_per_video: `<metric>_measured`, `<metric>_predicted`, `<metric>_low`, `<metric>_high`,
    `<metric>_error` (predicted / measured - 1, None where either is missing); then basis (what the
    UNet efficiency came from), calibrated_on, and note (why a point has no prediction).
    """
    rows: list[dict[str, Any]] = []
    for run in runs:
        points, notes = run_points(run)
        for note in notes:
            rows.append({"run": run.name, "note": note})
        if not points:
            continue
        others = [r for r in runs if r.path != run.path]
        cal_points, _ = gather_points(others, anchors=anchors)
        if anchors:
            cal_points.extend(calibration_points())
        if not cal_points:
            rows.extend({"run": run.name, "point": p.id, "gpu": p.device.name,
                         "note": "nothing else to calibrate on"} for p in points)
            continue
        cal = calibrate(cal_points)
        for point in points:
            row: dict[str, Any] = {"run": run.name, "point": point.id, "gpu": point.device.name,
                                   "arch": point.device.arch, "workload": point.workload.label()}
            try:
                stages = predict_stages(point.workload, point.device, cal)
            except BadInputError as exc:
                row["note"] = exc.message
                rows.append(row)
                continue
            energy = None
            fraction = cal.power_fraction(point.device)
            if point.device.power_w and fraction is not None:
                energy = stages.e2e_s.scaled(point.device.power_w * fraction.value)
            m = point.measured
            for metric, measured, est in (
                ("unet_step_s", m.unet_step_s, stages.unet_step_s),
                ("decode_s", m.decode_s, stages.decode_s),
                ("e2e_s", m.e2e_s, stages.e2e_s),
                ("peak_allocated_gib", m.peak_allocated_gib if point.device.is_gpu else None,
                 stages.peak_allocated_gib if point.device.is_gpu else None),
                ("energy_j_per_video", m.energy_j_per_video, energy),
            ):
                row[f"{metric}_measured"] = measured
                row[f"{metric}_predicted"] = None if est is None else est.value
                row[f"{metric}_low"] = None if est is None else est.low
                row[f"{metric}_high"] = None if est is None else est.high
                row[f"{metric}_error"] = (est.value / measured - 1) if est is not None and measured else None
            row["basis"] = stages.unet_step_s.basis
            row["calibrated_on"] = cal.describe()
            row["note"] = None if point.device.is_gpu else "CPU: nominal peak, exercises the code path only"
            rows.append(row)
    return rows


__all__ = [
    "Estimate",
    "Prediction",
    "default_calibration",
    "fit_candidates",
    "fit_verdict",
    "planning_calibration",
    "predict",
    "predict_for_runs",
    "predict_stages",
    "rank",
    "select_devices",
]
