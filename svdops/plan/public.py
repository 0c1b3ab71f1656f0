"""Public SVD measurements (svdops/data/plan_validation.yaml) as points to validate and calibrate on.

Every row is read tolerantly: a row that names an unknown card, lacks a setting or carries a
figure that is not a positive number is reported with its id and left out, never guessed at.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

from svdops.errors import BadInputError
from svdops.plan.calibrate import CalibrationPoint, Measured
from svdops.plan.costmodel import device_named, workload_from_point

VALIDATION_FILE = "plan_validation.yaml"
METRICS = ("unet_step_s", "decode_s", "e2e_s")


@dataclass(frozen=True)
class PublicRow:
    id: str
    point: CalibrationPoint | None
    engine: str
    metrics: tuple[str, ...]
    calibrate: bool
    excluded: str | None
    source: str
    settings: str
    card_as_stated: str


@cache
def public_rows() -> tuple[PublicRow, ...]:
    text = resources.files("svdops").joinpath("data", VALIDATION_FILE).read_text(encoding="utf-8")
    return parse_rows(yaml.safe_load(text), f"svdops/data/{VALIDATION_FILE}")


def parse_rows(data: Any, where: str) -> tuple[PublicRow, ...]:
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise BadInputError("no `rows` list", where=where, hint="see the comment at the top of the shipped file")
    rows = []
    for i, raw in enumerate(data["rows"]):
        rows.append(_row(raw, f"{where}: rows[{i}]"))
    return tuple(rows)


def _row(raw: Any, where: str) -> PublicRow:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
        raise BadInputError("a row needs an `id`", where=where)
    rid = raw["id"]
    excluded = raw.get("excluded")
    device = device_named(str(raw.get("device", "")))
    if device is None or not device.is_gpu:
        raise BadInputError(f"row {rid!r}: unknown GPU {raw.get('device')!r}", where=where,
                            hint="use a name from svdops/judge/knowledge/gpus.yaml in `device`")
    try:
        workload = workload_from_point(dict(raw["workload"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise BadInputError(f"row {rid!r}: workload lacks {exc}", where=where) from exc
    measured_raw = raw.get("measured") or {}
    values: dict[str, float] = {}
    for key, value in measured_raw.items():
        if key not in METRICS:
            raise BadInputError(f"row {rid!r}: unknown measured figure {key!r}", where=where,
                                hint=f"one of {', '.join(METRICS)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise BadInputError(f"row {rid!r}: {key} must be a positive number of seconds", where=where)
        values[key] = float(value)
    metrics = tuple(str(m) for m in raw.get("metrics") or ())
    missing = [m for m in metrics if m not in values]
    if missing:
        raise BadInputError(f"row {rid!r}: scores {', '.join(missing)} but does not measure it", where=where)
    source = str(raw.get("source", "")).strip()
    if not source:
        raise BadInputError(f"row {rid!r}: no source", where=where, hint="every public figure names its source")
    assumed = tuple(str(a) for a in raw.get("assumed") or ())
    point = CalibrationPoint(id=f"public:{rid}", device=device, workload=workload,
                             measured=Measured(**values), source=source, assumed=assumed)
    engine = str(raw.get("engine", "eager"))
    return PublicRow(rid, point, engine, metrics, bool(raw.get("calibrate")) and not excluded and engine == "eager",
                     None if excluded is None else str(excluded), source, workload.label(),
                     str(raw.get("card_as_stated", device.name)))


def calibration_points() -> list[CalibrationPoint]:
    """Public rows marked `calibrate: true` (eager, not excluded): only the figures they score."""
    out = []
    for row in public_rows():
        if row.calibrate and row.point is not None:
            m = row.point.measured
            kept = Measured(**{k: getattr(m, k) for k in row.metrics})
            out.append(CalibrationPoint(row.point.id, row.point.device, row.point.workload, kept,
                                        row.point.source, assumed=row.point.assumed))
    return out
