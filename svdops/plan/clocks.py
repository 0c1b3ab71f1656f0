"""Sustained clocks under a power cap, and whether today's wheels still run on a card.

A datasheet tensor peak is quoted at the boost clock. Under SVD's load a card holds that clock only
if its power cap allows it. The model (one measurement, one physical law, stated assumptions):

- demand: at boost, the workload would draw `k x peak TFLOP/s` watts, with `k` the same for every
  card (assumed: equal energy per tensor operation across generations; newer nodes are more
  efficient, so older cards are, if anything, predicted a little less power-bound than they are);
- law: dynamic power goes as f x V^2 and V tracks f in the DVFS range, so power ~ f^3 and a card
  whose demand exceeds its cap settles at `boost x (cap / demand)^(1/3)`, never below its base clock;
- calibration: the reference H100 SXM ran the eager SVD-XT pipeline at its 700 W cap with the
  SM clock at 1933 MHz on average against 1980 MHz (shared/anchors/telemetry-h100.json, see
  svdops/data/plan_gpus.yaml), which fixes `k = cap / (f/boost)^3 / peak`.

So the H100 SXM and the H200 (same GH100, same 700 W) hold the same clock and the same compute
rate, and the H100 PCIe (350 W for 756 TFLOP/s) is predicted well below its boost. Only the
compute part of the roofline scales with the clock; HBM runs on its own clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

from svdops.errors import BadInputError
from svdops.judge import knowledge as kb
from svdops.versions import Version

GPUS_FILE = "plan_gpus.yaml"


@dataclass(frozen=True)
class Clocks:
    fraction: float  # sustained SM clock / boost clock on this workload
    power_bound: bool
    boost_mhz: float | None
    sustained_mhz: float | None
    basis: str


@cache
def _document() -> dict[str, Any]:
    text = resources.files("svdops").joinpath("data", GPUS_FILE).read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    if not isinstance(data, dict) or not isinstance(data.get("gpus"), list) or "calibration" not in data:
        raise BadInputError("no `gpus` list or `calibration`", where=f"svdops/data/{GPUS_FILE}")
    return data


def clock_rows() -> dict[str, dict[str, Any]]:
    return {str(row["name"]): row for row in _document()["gpus"]}


def calibration() -> dict[str, Any]:
    return dict(_document()["calibration"])


def host_copy() -> dict[str, Any]:
    """The measured staging-copy rate and the assumed DMA share of the link (plan_gpus.yaml `host_copy`)."""
    return dict(_document()["host_copy"])


def watts_per_tflop() -> float:
    """Watts the workload would draw per dense fp16 TFLOP/s at boost clock (from the H100 telemetry)."""
    cal = calibration()
    spec = kb.gpu_spec(str(cal["gpu"]))
    fraction = float(cal["mean_sm_mhz_under_cap"]) / float(cal["boost_mhz"])
    return float(cal["power_cap_w"]) / fraction**3 / spec.fp16_tflops


def sustained(name: str, peak_tflops: float, power_w: float | None) -> Clocks:
    """The clock a card holds on eager SVD, as a fraction of the boost its peak is quoted at."""
    row = clock_rows().get(name, {})
    boost = row.get("boost_mhz")
    base = row.get("base_mhz")
    if power_w is None or peak_tflops <= 0:
        return Clocks(1.0, False, boost, boost, "no power cap in the table: boost clock assumed")
    demand = watts_per_tflop() * peak_tflops
    if demand <= power_w:
        return Clocks(1.0, False, boost, boost,
                      f"not power-bound: about {demand:.0f} W wanted at boost, {power_w:.0f} W cap")
    fraction = (power_w / demand) ** (1 / 3)
    floor = (base / boost) if base and boost else 0.0
    held_at_base = fraction < floor
    fraction = max(fraction, floor)
    mhz = boost * fraction if boost else None
    where = f"{mhz:.0f} MHz of {boost:.0f}" if mhz and boost else f"{fraction:.0%} of boost"
    return Clocks(fraction, True, boost, mhz,
                  f"power-bound: about {demand:.0f} W wanted at boost against a {power_w:.0f} W cap, "
                  f"so {where}{' (held at base clock)' if held_at_base else ''}")


# --- which software still runs on a card -------------------------------------------------------


@dataclass(frozen=True)
class Support:
    runs_on_current_wheels: bool
    reason: str
    last_software: str | None


@cache
def software_support(name: str) -> Support | None:
    """Whether the newest PyTorch release's CUDA 12.8+ wheels carry code for this card; None if unknown.

    Read from the judge's torch arch lists (svdops/judge/knowledge/torch.yaml), never edited here."""
    cc = kb.compute_capability_of(name)
    if cc is None:
        return None
    rows = kb.knowledge().arch_lists
    newest = max(t for releases, _, _, _ in rows for t in releases)
    cu128 = Version.parse("12.8")
    current = [(cuda, archs) for releases, cuda, archs, _ in rows if newest in releases and cuda >= cu128]
    if not current:
        return None
    missing = [cuda for cuda, archs in current if not kb.arch_runs_on(archs, cc)]
    if len(missing) < len(current):
        return Support(True, f"torch {newest} CUDA {', '.join(str(c) for c, _ in current)} wheels carry it", None)
    runs = [(max(releases), cuda) for releases, cuda, archs, _ in rows if kb.arch_runs_on(archs, cc)]
    last = max(runs) if runs else None
    sm = f"sm_{cc.parts[0]}{cc.parts[1] if len(cc.parts) > 1 else 0}"
    reason = (f"no {sm} in torch {newest} wheels for CUDA {', '.join(str(c) for c in missing)} "
              "(svdops/judge/knowledge/torch.yaml arch lists)")
    last_software = None if last is None else f"torch {last[0]} with CUDA {last[1]} wheels"
    return Support(False, reason, last_software)
