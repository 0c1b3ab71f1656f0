"""Leave-one-device-out: calibrate on every measured device but one, predict the one left out.

The honest test of a planner is a card it was not calibrated on. With measurements from a single
device there is nothing to hold out, and the report says so rather than predicting a card from
itself. CPU runs (the tiny scenario) count as a device only to exercise this path: their peak is a
placeholder, so their rows carry no target and say so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from svdops.errors import BadInputError
from svdops.plan.calibrate import CalibrationPoint, calibrate
from svdops.plan.predict import predict_stages

# The targets: UNet time per step for a held-out GPU of a calibrated architecture, and peak VRAM.
UNET_TARGET = 0.10
PEAK_TARGET = 0.15


@dataclass(frozen=True)
class HeldOutRow:
    held_out: str
    point: str
    relation: str  # same-arch | cross-arch | cpu
    calibrated_on: str
    metric: str
    measured: float
    predicted: float
    target: float | None  # None: no target applies (another architecture, the CPU)

    @property
    def error(self) -> float:
        return self.predicted / self.measured - 1

    @property
    def passed(self) -> bool | None:
        return None if self.target is None else abs(self.error) <= self.target


@dataclass
class ValidationReport:
    devices: list[str]
    rows: list[HeldOutRow] = field(default_factory=list)
    message: str = ""

    @property
    def possible(self) -> bool:
        return len(self.devices) >= 2

    @property
    def failed(self) -> list[HeldOutRow]:
        return [r for r in self.rows if r.passed is False]


def validate(points: Sequence[CalibrationPoint]) -> ValidationReport:
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
    for held in devices:
        test = [p for p in points if p.device.name == held]
        train = [p for p in points if p.device.name != held]
        cal = calibrate(train)
        target_device = test[0].device
        archs = {p.device.arch for p in train if p.device.is_gpu}
        if not target_device.is_gpu:
            relation = "cpu"
        elif target_device.arch in archs:
            relation = "same-arch"
        else:
            relation = "cross-arch"
        for point in test:
            try:
                stages = predict_stages(point.workload, point.device, cal)
            except BadInputError:
                skipped.append(point.id)
                continue
            same = relation == "same-arch"
            if point.measured.unet_step_s:
                report.rows.append(HeldOutRow(held, point.id, relation, cal.describe(), "unet_step_s",
                                              point.measured.unet_step_s, stages.unet_step_s.value,
                                              UNET_TARGET if same else None))
            if point.measured.peak_allocated_gib and point.device.is_gpu:
                report.rows.append(HeldOutRow(held, point.id, relation, cal.describe(), "peak_allocated_gib",
                                              point.measured.peak_allocated_gib,
                                              stages.peak_allocated_gib.value, PEAK_TARGET))
    lines = [f"held out each of {len(devices)} devices in turn; targets: UNet s/step within {UNET_TARGET:.0%} "
             f"for a GPU of a calibrated architecture, peak within {PEAK_TARGET:.0%}"]
    gpus = sorted({p.device.name for p in points if p.device.is_gpu})
    if len(gpus) < 2:
        lines.append(f"only one GPU was measured ({', '.join(gpus) or 'none'}): no GPU can be held out, and the CPU "
                     "rows only exercise the code path (CPU factors never carry over to a GPU)")
    if skipped:
        lines.append(f"not predicted ({len(skipped)} points): nothing left to calibrate them on once their device "
                     f"was held out: {', '.join(skipped)}")
    report.message = "\n".join(lines)
    return report
