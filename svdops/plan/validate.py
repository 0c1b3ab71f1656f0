"""Leave-one-device-out: calibrate on every measured device but one, predict the one left out.

The honest test of a planner is a card it was not calibrated on. The points are the shipped H100
anchors, the public measurements in svdops/data/plan_validation.yaml (each with its settings and
source) and any bench runs given. Each device is held out in turn: every point measured on it is
predicted from a calibration on all the others, and each scored metric's error is recorded.

The bands `svdops plan` prints come from these errors, not from judgement: per relation (same
architecture / another architecture) the band is the largest held-out error seen, and says how
many points stand behind it (`loo_bands`). A row is checked against a band built from the *other*
rows only, so no point vouches for itself.

A public figure faster than the card's roofline at 100% efficiency cannot be what its stated
settings ran (other settings, another accumulate mode): it is reported as such and not scored.
CPU runs (the tiny scenario) count as a device only to exercise this path: their peak is a
placeholder, so their rows carry no target and say so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from svdops.errors import BadInputError
from svdops.plan.calibrate import Calibration, CalibrationPoint, calibrate, per_call, stage_seconds
from svdops.plan.costmodel import stage_floors
from svdops.plan.predict import predict_stages

# The targets: a held-out GPU of a calibrated architecture within 5% (UNet s/step, decode,
# end to end), of another architecture within 15%; peak VRAM within 15%.
SAME_ARCH_TARGET = 0.05
CROSS_ARCH_TARGET = 0.15
UNET_TARGET = SAME_ARCH_TARGET
PEAK_TARGET = 0.15
TIME_METRICS = ("unet_step_s", "decode_s", "e2e_s")


@dataclass(frozen=True)
class HeldOutRow:
    held_out: str
    point: str
    relation: str  # same-arch | cross-arch | cpu
    calibrated_on: str
    metric: str
    measured: float
    predicted: float
    target: float | None  # None: no target applies (the CPU)
    band: float | None = None  # the leave-one-out band built from the other rows
    band_points: int = 0
    source: str = ""
    settings: str = ""
    assumed: tuple[str, ...] = ()

    @property
    def error(self) -> float:
        return self.predicted / self.measured - 1

    @property
    def passed(self) -> bool | None:
        return None if self.target is None else abs(self.error) <= self.target

    @property
    def in_band(self) -> bool | None:
        if self.band is None:
            return None
        return abs(self.error) <= self.band


@dataclass
class ValidationReport:
    devices: list[str]
    rows: list[HeldOutRow] = field(default_factory=list)
    message: str = ""
    not_scored: list[tuple[str, str]] = field(default_factory=list)  # (point, why)

    @property
    def possible(self) -> bool:
        return len(self.devices) >= 2

    @property
    def failed(self) -> list[HeldOutRow]:
        return [r for r in self.rows if r.passed is False]

    def bands(self) -> dict[str, tuple[float, int]]:
        return loo_bands(self.rows)


def loo_bands(rows: Sequence[HeldOutRow]) -> dict[str, tuple[float, int]]:
    """relation -> (largest absolute held-out error on the time metrics, points behind it)."""
    out: dict[str, tuple[float, int]] = {}
    for relation in ("same-arch", "cross-arch"):
        errors = [abs(r.error) for r in rows if r.relation == relation and r.metric in TIME_METRICS]
        points = {r.point for r in rows if r.relation == relation and r.metric in TIME_METRICS}
        if errors:
            out[relation] = (max(errors), len(points))
    return out


def _relation(target: CalibrationPoint, train: Sequence[CalibrationPoint]) -> str:
    if not target.device.is_gpu:
        return "cpu"
    archs = {p.device.arch for p in train if p.device.is_gpu}
    return "same-arch" if target.device.arch in archs else "cross-arch"


def _impossible(point: CalibrationPoint) -> str | None:
    """Why a figure cannot be what its settings ran: faster than the roofline at 100% efficiency."""
    floors = stage_floors(point.workload, point.device)
    m = point.measured
    unet = floors["unet"].floor_s
    if m.unet_step_s and m.unet_step_s < unet / point.workload.steps:
        return (f"{m.unet_step_s:.3g} s per step is faster than the card's roofline "
                f"({unet / point.workload.steps:.3g} s at 100% of its fp16 tensor peak)")
    if m.e2e_s and m.e2e_s < unet + floors["decode"].floor_s:
        return (f"{m.e2e_s:.3g} s end to end is faster than the card's roofline "
                f"({unet + floors['decode'].floor_s:.3g} s for UNet and decode at 100% of its fp16 tensor peak)")
    return None


def _predicted(point: CalibrationPoint, cal: Calibration) -> dict[str, float]:
    """Every metric the calibration can predict; the UNet step alone when the rest cannot be
    calibrated (no decode measured off the held-out card)."""
    try:
        stages = predict_stages(point.workload, point.device, cal)
    except BadInputError:
        floors = stage_floors(point.workload, point.device)
        found = cal.unet_efficiency(point.device, point.workload.compile)  # raises when even this is missing
        return {"unet_step_s": stage_seconds(per_call(floors["unet"], point.workload.steps), found.value)}
    return {"unet_step_s": stages.unet_step_s.value, "decode_s": stages.decode_s.value,
            "e2e_s": stages.e2e_s.value, "peak_allocated_gib": stages.peak_allocated_gib.value}


def validate(points: Sequence[CalibrationPoint], scored: dict[str, tuple[str, ...]] | None = None,
             meta: dict[str, tuple[str, str]] | None = None) -> ValidationReport:
    """Hold out each device; `scored` limits a point's metrics (public rows), `meta` gives
    (source, settings) per point id for the table."""
    scored = scored or {}
    meta = meta or {}
    devices = sorted({p.device.name for p in points})
    report = ValidationReport(devices)
    if len(devices) < 2:
        only = devices[0] if devices else "no device"
        report.message = (
            f"cannot hold one out: every calibration point was measured on {only} ({len(points)} points). "
            "Validation needs measurements from two or more devices: bench another GPU "
            "(svdops bench --store DIR) and pass its runs."
        )
        return report
    skipped: list[str] = []
    raw: list[HeldOutRow] = []
    impossible = {p.id: why for p in points if p.device.is_gpu and (why := _impossible(p))}
    report.not_scored.extend(impossible.items())
    usable = [p for p in points if p.id not in impossible]
    for held in devices:
        test = [p for p in usable if p.device.name == held]
        # offloaded points price the PCIe copy, not the kernels: they validate, never calibrate
        train = [p for p in usable if p.device.name != held and not p.workload.cpu_offload]
        if not train:
            skipped.extend(p.id for p in test)
            continue
        cal = calibrate(train)
        for point in test:
            try:
                predicted_by = _predicted(point, cal)
            except BadInputError:
                skipped.append(point.id)
                continue
            relation = _relation(point, train)
            target = {"same-arch": SAME_ARCH_TARGET, "cross-arch": CROSS_ARCH_TARGET}.get(relation)
            wanted = scored.get(point.id, ("unet_step_s", "decode_s", "e2e_s", "peak_allocated_gib"))
            source, settings = meta.get(point.id, (point.source, point.workload.label()))
            m = point.measured
            for metric, measured, predicted, tgt in (
                ("unet_step_s", m.unet_step_s, predicted_by.get("unet_step_s"), target),
                ("decode_s", m.decode_s, predicted_by.get("decode_s"), target),
                ("e2e_s", m.e2e_s, predicted_by.get("e2e_s"), target),
                ("peak_allocated_gib", m.peak_allocated_gib if point.device.is_gpu else None,
                 predicted_by.get("peak_allocated_gib"), PEAK_TARGET if relation != "cpu" else None),
            ):
                if measured and predicted is not None and metric in wanted:
                    raw.append(HeldOutRow(held, point.id, relation, cal.describe(), metric, measured, predicted,
                                          tgt, source=source, settings=settings, assumed=point.assumed))
    # each row's band from the others' errors at its relation
    for row in raw:
        others = [r for r in raw if r.point != row.point]
        band = loo_bands(others).get(row.relation)
        report.rows.append(HeldOutRow(**{**row.__dict__, "band": None if band is None else band[0],
                                         "band_points": 0 if band is None else band[1]}))
    lines = [f"held out each of {len(devices)} devices in turn; targets: within {SAME_ARCH_TARGET:.0%} for a card "
             f"of a calibrated architecture, {CROSS_ARCH_TARGET:.0%} for another architecture; peak within "
             f"{PEAK_TARGET:.0%}"]
    for relation, (spread, n) in sorted(loo_bands(report.rows).items()):
        cards = sorted({r.held_out for r in report.rows if r.relation == relation and r.metric in TIME_METRICS})
        lines.append(f"band {relation}: ±{spread:.0%} from {n} held-out points on {len(cards)} cards "
                     f"({', '.join(cards)})")
    gpus = sorted({p.device.name for p in points if p.device.is_gpu})
    if len(gpus) < 2:
        lines.append(f"only one GPU was measured ({', '.join(gpus) or 'none'}): no GPU can be held out, and the CPU "
                     "rows only exercise the code path (CPU factors never carry over to a GPU)")
    for pid, why in report.not_scored:
        lines.append(f"not scored {pid}: {why}")
    if skipped:
        lines.append(f"not predicted ({len(skipped)} points): nothing left to calibrate them on once their device "
                     f"was held out: {', '.join(skipped)}")
    report.message = "\n".join(lines)
    return report


def public_validation_points() -> tuple[list[CalibrationPoint], dict[str, tuple[str, ...]],
                                        dict[str, tuple[str, str]], list[tuple[str, str]]]:
    """The shipped public rows to validate: points, the metrics each scores, (source, settings),
    and the excluded rows with why."""
    from svdops.plan.public import public_rows

    points, scored, meta, excluded = [], {}, {}, []
    for row in public_rows():
        if row.point is None:
            continue
        if row.excluded or row.engine != "eager":
            excluded.append((row.point.id, row.excluded or f"{row.engine} engine"))
            continue
        points.append(row.point)
        scored[row.point.id] = row.metrics
        meta[row.point.id] = (row.source, f"{row.card_as_stated}: {row.settings}")
    return points, scored, meta, excluded
