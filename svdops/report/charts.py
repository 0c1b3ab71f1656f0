"""Charts as inline SVG strings: no JavaScript, no fonts or files to fetch, so a report opens offline and prints.

Every function returns `markupsafe.Markup` built here, with every piece of text (host names, notes,
labels: untrusted) passed through `escape`. Colours come from CSS classes (`c-unet`, `c-power`...)
defined by the report's stylesheet, so the print stylesheet and the legend stay in one place.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd
from markupsafe import Markup, escape

from svdops.report.telemetry_series import TelemetrySeries
from svdops.telemetry import CLOCKS_EVENT_REASONS, THROTTLE_REASONS

FONT_PX = 12
CHAR_PX = 6.6  # average glyph width of the 12 px sans-serif stack, for truncating labels
LABEL_PX = 400
ROW_PX = 24
MAX_SERIES_POINTS = 900  # more points than pixels only grows the file

POWER_CAP_MASK = next(bit for bit, name in CLOCKS_EVENT_REASONS.items() if name == "sw_power_cap")
THROTTLE_MASK = sum(bit for bit, name in CLOCKS_EVENT_REASONS.items() if name in THROTTLE_REASONS)


def fmt_number(value: float | None, digits: int = 1) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    if abs(value) >= 10000:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def tick_label(value: float, ticks: Sequence[float]) -> str:
    """As many decimals as the tick step needs: 0.25 steps print 0.25, 0.50, 0.75, not 0.2, 0.5, 0.8."""
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else 1.0
    decimals = 0
    while decimals < 6 and abs(round(step, decimals) - step) > step * 1e-6:
        decimals += 1
    return f"{value:,.{decimals}f}"


def _f(value: float) -> str:
    """Coordinates with one decimal: enough for a screen, a third of the bytes of repr()."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _clip_text(text: str, px: float) -> str:
    limit = max(int(px / CHAR_PX), 4)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _svg(width: float, height: float, body: Iterable[str], label: str) -> Markup:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{_f(width)}" '
        f'height="{_f(height)}" viewBox="0 0 {_f(width)} {_f(height)}" aria-label="{escape(label)}">'
        f"<title>{escape(label)}</title>"
    )
    return Markup(head + "".join(body) + "</svg>")  # noqa: S704 - every text part above is escaped


def _text(x: float, y: float, text: str, css: str = "", anchor: str = "start", full: str | None = None) -> str:
    cls = f' class="{css}"' if css else ""
    tip = f"<title>{escape(full)}</title>" if full and full != text else ""
    return f'<text x="{_f(x)}" y="{_f(y)}"{cls} text-anchor="{anchor}">{tip}{escape(text)}</text>'


def _rect(x: float, y: float, w: float, h: float, css: str, tip: str | None = None) -> str:
    title = f"<title>{escape(tip)}</title>" if tip else ""
    return f'<rect x="{_f(x)}" y="{_f(y)}" width="{_f(max(w, 0))}" height="{_f(h)}" class="{css}">{title}</rect>'


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 2.5, 5 x 10^n) covering [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        high = low + 1
    raw = (high - low) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step) * step
    ticks = []
    value = start
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 10))
    return ticks


# --- horizontal bars ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    label: str
    value: float | None
    note: str = ""  # shown after the value, or instead of it when there is none
    css: str = "c-bar"


def bar_chart(bars: Sequence[Bar], *, unit: str, digits: int = 1, width: int = 1060, title: str = "") -> Markup:
    """One horizontal bar per row on a shared axis from zero; a row without a value says why."""
    values = [b.value for b in bars if b.value is not None and math.isfinite(b.value)]
    top = max(values, default=1.0) or 1.0
    track = width - LABEL_PX - 260
    body = []
    for i, bar in enumerate(bars):
        y = 8 + i * ROW_PX
        body.append(_text(LABEL_PX - 8, y + 14, _clip_text(bar.label, LABEL_PX - 12), "lbl", "end", bar.label))
        if bar.value is None or not math.isfinite(bar.value):
            body.append(_text(LABEL_PX, y + 14, bar.note or "n/a", "muted"))
            continue
        w = track * max(bar.value, 0) / top
        body.append(
            _rect(LABEL_PX, y + 3, w, ROW_PX - 8, bar.css, f"{bar.label}: {fmt_number(bar.value, digits)} {unit}")
        )
        text = f"{fmt_number(bar.value, digits)} {unit}" + (f"  {bar.note}" if bar.note else "")
        body.append(_text(LABEL_PX + w + 6, y + 14, text, "val"))
    return _svg(width, 16 + len(bars) * ROW_PX, body, title or f"bar chart ({unit})")


@dataclass(frozen=True)
class Segment:
    key: str
    label: str
    css: str


@dataclass(frozen=True)
class Stack:
    label: str
    values: Mapping[str, float | None]
    note: str = ""


def stacked_bars(
    stacks: Sequence[Stack], segments: Sequence[Segment], *, unit: str = "s", width: int = 1060, title: str = ""
) -> Markup:
    """Stacked horizontal bars on a shared axis, a legend on top, the total at the end of each bar."""
    totals = [sum(v for v in s.values.values() if v is not None and math.isfinite(v)) for s in stacks]
    top = max(totals, default=1.0) or 1.0
    track = width - LABEL_PX - 90
    body = [_legend([(s.label, s.css) for s in segments], LABEL_PX, 14)]
    for i, (stack, total) in enumerate(zip(stacks, totals, strict=True)):
        y = 26 + i * ROW_PX
        body.append(_text(LABEL_PX - 8, y + 14, _clip_text(stack.label, LABEL_PX - 12), "lbl", "end", stack.label))
        if total <= 0:
            body.append(_text(LABEL_PX, y + 14, stack.note or "no stage timings", "muted"))
            continue
        x: float = LABEL_PX
        for seg in segments:
            value = stack.values.get(seg.key)
            if value is None or not math.isfinite(value) or value <= 0:
                continue
            w = track * value / top
            share = value / total
            body.append(
                _rect(
                    x,
                    y + 3,
                    w,
                    ROW_PX - 8,
                    seg.css,
                    f"{stack.label}: {seg.label} {fmt_number(value, 3)} {unit} ({share:.0%})",
                )
            )
            if w > 34:
                body.append(_text(x + w / 2, y + 14, f"{share:.0%}", "inbar", "middle"))
            x += w
        body.append(_text(x + 6, y + 14, f"{fmt_number(total, 2)} {unit}", "val"))
    return _svg(width, 34 + len(stacks) * ROW_PX, body, title or "stage breakdown")


def _legend(items: Sequence[tuple[str, str]], x: float, y: float) -> str:
    parts = []
    for label, css in items:
        parts.append(_rect(x, y - 9, 11, 11, css))
        parts.append(_text(x + 15, y, label, "lbl"))
        x += 15 + len(label) * CHAR_PX + 18
    return "".join(parts)


@dataclass(frozen=True)
class Memory:
    label: str
    allocated_gib: float | None
    reserved_gib: float | None
    capacity_gib: float | None
    note: str = ""
    oom: bool = False


def memory_bars(rows: Sequence[Memory], *, width: int = 1060, title: str = "VRAM peaks") -> Markup:
    """Each card's track is its own capacity: how full it ran, not which card is bigger."""
    track = width - LABEL_PX - 250
    body = [
        _legend(
            [
                ("peak allocated", "c-alloc"),
                ("peak reserved", "c-reserved"),
                ("capacity", "c-track"),
                ("out of memory", "c-oom"),
            ],
            LABEL_PX,
            14,
        )
    ]
    for i, row in enumerate(rows):
        y = 26 + i * ROW_PX
        body.append(_text(LABEL_PX - 8, y + 14, _clip_text(row.label, LABEL_PX - 12), "lbl", "end", row.label))
        capacity = row.capacity_gib
        used = [v for v in (row.allocated_gib, row.reserved_gib) if v is not None]
        if capacity is None or capacity <= 0:
            body.append(_text(LABEL_PX, y + 14, row.note or "no GPU memory figures", "muted"))
            continue
        body.append(
            _rect(
                LABEL_PX,
                y + 3,
                track,
                ROW_PX - 8,
                "c-oom" if row.oom and not used else "c-track",
                f"{row.label}: capacity {fmt_number(capacity)} GiB",
            )
        )
        if row.reserved_gib is not None:
            body.append(
                _rect(
                    LABEL_PX,
                    y + 3,
                    track * min(row.reserved_gib / capacity, 1),
                    ROW_PX - 8,
                    "c-reserved",
                    f"peak reserved {fmt_number(row.reserved_gib, 2)} GiB",
                )
            )
        if row.allocated_gib is not None:
            body.append(
                _rect(
                    LABEL_PX,
                    y + 6,
                    track * min(row.allocated_gib / capacity, 1),
                    ROW_PX - 14,
                    "c-alloc",
                    f"peak allocated {fmt_number(row.allocated_gib, 2)} GiB",
                )
            )
        if used:
            text = (
                f"{fmt_number(row.allocated_gib, 1)} / {fmt_number(row.reserved_gib, 1)} of "
                f"{fmt_number(capacity, 1)} GiB ({max(used) / capacity:.0%})"
            )
        else:
            text = f"{row.note or 'not measured'} ({fmt_number(capacity, 1)} GiB card)"
        body.append(_text(LABEL_PX + track + 8, y + 14, text, "val bad" if row.oom else "val"))
    return _svg(width, 34 + len(rows) * ROW_PX, body, title)


# --- telemetry over time ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Panel:
    column: str
    title: str
    unit: str
    css: str
    reference: Callable[[pd.DataFrame], float | None] | None = None  # e.g. the power cap
    reference_label: str = ""


PANELS = (
    Panel("temp_c", "temperature", "°C", "c-temp"),
    Panel("power_w", "power", "W", "c-power", lambda s: _column_max(s, "power_limit_w"), "cap"),
    Panel("sm_mhz", "SM clock", "MHz", "c-sm"),
)
STAGE_CSS = {"clip": "c-encode", "vae_encode": "c-encode", "unet": "c-unet", "decode": "c-decode"}


def _column_max(samples: pd.DataFrame, column: str) -> float | None:
    if column not in samples:
        return None
    value = pd.to_numeric(samples[column], errors="coerce").max()
    return float(value) if pd.notna(value) else None


def _intervals(t: Sequence[float], flags: Sequence[bool]) -> list[tuple[float, float]]:
    """Spans where a flag holds; each sample covers the time until the next one (the last, nothing:
    the axis ends at the last sample)."""
    spans: list[tuple[float, float]] = []
    for i, on in enumerate(flags):
        if not on:
            continue
        end = t[i + 1] if i + 1 < len(t) else t[i]
        if spans and abs(spans[-1][1] - t[i]) < 1e-9:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((t[i], end))
    return spans


def _downsample(samples: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    if len(samples) <= MAX_SERIES_POINTS:
        return samples
    bucket = (samples["t_s"] / samples["t_s"].max() * (MAX_SERIES_POINTS - 1)).round()
    return samples.groupby(bucket)[["t_s", *columns]].mean().reset_index(drop=True)


@dataclass
class _Axis:
    x0: float
    x1: float
    t_max: float

    def x(self, t: float) -> float:
        return self.x0 + (self.x1 - self.x0) * t / self.t_max if self.t_max > 0 else self.x0


@dataclass
class StageSpan:
    stage: str
    start: float
    end: float
    iteration: int | None


@dataclass
class _Marks:
    spans: list[StageSpan] = field(default_factory=list)
    iteration_starts: list[tuple[float, int | None]] = field(default_factory=list)


def stage_spans(marks: pd.DataFrame) -> _Marks:
    """Pair `<stage>:start` with the next `<stage>:end` of the same point and iteration."""
    out = _Marks()
    if marks.empty:
        return out
    open_: dict[tuple[str, object, object], float] = {}
    for row in marks.itertuples(index=False):
        label = str(getattr(row, "label", ""))
        stage, _, edge = label.rpartition(":")
        t = float(getattr(row, "t_s", math.nan))
        if not math.isfinite(t):
            continue
        iteration = getattr(row, "iteration", None)
        it = int(iteration) if iteration is not None and pd.notna(iteration) else None
        key = (stage, getattr(row, "point", None), iteration)
        if stage == "iteration" and edge == "start":
            out.iteration_starts.append((t, it))
        elif stage in STAGE_CSS and edge == "start":
            open_[key] = t
        elif stage in STAGE_CSS and edge == "end" and key in open_:
            out.spans.append(StageSpan(stage, open_.pop(key), t, it))
    return out


def _event_masks(samples: pd.DataFrame) -> list[int]:
    """The clocks-event bit mask of each sample; 0 where it is absent or not a mask NVML could report."""
    if "clocks_event_mask" not in samples:
        return [0] * len(samples)
    masks = []
    for value in pd.to_numeric(samples["clocks_event_mask"], errors="coerce"):
        ok = isinstance(value, int | float) and math.isfinite(value) and 0 <= value < 2**63
        masks.append(int(value) if ok else 0)
    return masks


def telemetry_chart(series: TelemetrySeries, *, width: int = 1060, panel_px: int = 92) -> Markup:
    """Temperature, power against its cap and SM clock on one time axis, with throttling shaded and
    the benchmark's stages drawn as a strip above the panels (dotted lines at each iteration start)."""
    samples = series.samples
    left, right = 64, width - 70
    strip_y, strip_h = 30, 12
    top = strip_y + strip_h + 24
    gap = 24
    t_values = [float(t) for t in samples["t_s"]]
    t_max = max(t_values[-1] if t_values else 1.0, 1e-6)
    marks = stage_spans(series.marks)
    if marks.spans:
        t_max = max(t_max, max(s.end for s in marks.spans))
    axis = _Axis(left, right, t_max)
    height = top + len(PANELS) * (panel_px + gap) + 24
    body = [
        _legend(
            [
                ("encode", "c-encode"),
                ("UNet", "c-unet"),
                ("decode", "c-decode"),
                ("power cap active", "c-powercap"),
                ("thermal / HW slowdown", "c-throttle"),
            ],
            left,
            14,
        )
    ]

    mask = _event_masks(samples)
    flags_cap = [bool(m & POWER_CAP_MASK) for m in mask]
    flags_hot = [bool(m & THROTTLE_MASK) for m in mask]
    cap_spans, hot_spans = _intervals(t_values, flags_cap), _intervals(t_values, flags_hot)

    body.append(_text(left - 6, strip_y + 10, "stages", "axis", "end"))
    body.append(_rect(left, strip_y, right - left, strip_h, "c-strip"))
    for span in marks.spans:
        tip = f"{span.stage} {span.end - span.start:.2f} s" + (
            f" (iteration {span.iteration})" if span.iteration is not None else ""
        )
        body.append(
            _rect(
                axis.x(span.start), strip_y, axis.x(span.end) - axis.x(span.start), strip_h, STAGE_CSS[span.stage], tip
            )
        )

    shown = _downsample(samples, [p.column for p in PANELS if p.column in samples])
    for index, panel in enumerate(PANELS):
        y0 = top + index * (panel_px + gap)
        y1 = y0 + panel_px
        body.append(_rect(left, y0, right - left, panel_px, "c-panel"))
        for start, end in cap_spans:
            body.append(_rect(axis.x(start), y0, axis.x(end) - axis.x(start), panel_px, "c-powercap"))
        for start, end in hot_spans:
            body.append(_rect(axis.x(start), y0, axis.x(end) - axis.x(start), panel_px, "c-throttle"))
        for t, _ in marks.iteration_starts:
            body.append(
                f'<line x1="{_f(axis.x(t))}" x2="{_f(axis.x(t))}" y1="{_f(strip_y)}" y2="{_f(y1)}" class="c-iter"/>'
            )
        values = pd.to_numeric(shown[panel.column], errors="coerce") if panel.column in shown else None
        reference = panel.reference(samples) if panel.reference else None
        if values is None or values.notna().sum() == 0:
            body.append(
                _text((left + right) / 2, y0 + panel_px / 2 + 4, f"no {panel.title} samples", "muted", "middle")
            )
            body.append(_text(left - 6, y0 + 12, panel.title, "axis", "end"))
            continue
        low, high = float(values.min()), float(values.max())
        if reference is not None:
            high = max(high, reference)
        ticks = nice_ticks(min(low, 0.0) if panel.column == "power_w" else low, high, 3)
        lo, hi = ticks[0], ticks[-1]

        def y_of(v: float, lo: float = lo, hi: float = hi, y0: float = y0, y1: float = y1) -> float:
            return y1 - (v - lo) / (hi - lo) * (y1 - y0) if hi > lo else y1

        for tick in ticks:
            body.append(
                f'<line x1="{_f(left)}" x2="{_f(right)}" y1="{_f(y_of(tick))}" y2="{_f(y_of(tick))}" class="c-grid"/>'
            )
            body.append(_text(left - 6, y_of(tick) + 4, tick_label(tick, ticks), "axis", "end"))
        points = [f"{_f(axis.x(t))},{_f(y_of(v))}" for t, v in zip(shown["t_s"], values, strict=True) if pd.notna(v)]
        body.append(f'<polyline points="{" ".join(points)}" class="line {panel.css}"/>')
        if reference is not None:
            body.append(
                f'<line x1="{_f(left)}" x2="{_f(right)}" y1="{_f(y_of(reference))}" '
                f'y2="{_f(y_of(reference))}" class="c-cap"/>'
            )
            body.append(
                _text(right + 4, y_of(reference) + 4, f"{panel.reference_label} {fmt_number(reference, 0)}", "axis")
            )
        body.append(_text(left, y0 - 5, f"{panel.title} ({panel.unit})", "ptitle"))
    x_ticks = nice_ticks(0, t_max, 8)
    base = top + len(PANELS) * (panel_px + gap) - gap + 14
    for tick in x_ticks:
        if tick <= t_max * 1.001:
            body.append(_text(axis.x(tick), base, tick_label(tick, x_ticks), "axis", "middle"))
    body.append(_text(right + 4, base, "s", "axis"))
    return _svg(width, height, body, f"telemetry of {series.run} on {series.host}")


# --- x/y lines (scaling, NCCL bandwidth) ------------------------------------------------------------------


def line_chart(
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    x_label: str,
    y_label: str,
    log_x: bool = False,
    ideal: Sequence[tuple[float, float]] | None = None,
    width: int = 640,
    height: int = 260,
    title: str = "",
) -> Markup:
    """One polyline with dots per series; `ideal` is drawn dashed (linear scaling)."""
    left, right, top, bottom = 64, width - 150, 30, height - 36
    all_points = [p for pts in series.values() for p in pts] + list(ideal or [])
    xs = [x for x, _ in all_points if not log_x or x > 0]
    ys = [y for _, y in all_points]
    if not xs or not ys:
        return _svg(width, 40, [_text(8, 24, "no data", "muted")], title or y_label)

    def tx(v: float) -> float:
        return math.log10(v) if log_x else v

    x_lo, x_hi = min(tx(x) for x in xs), max(tx(x) for x in xs)
    if x_hi <= x_lo:
        x_hi = x_lo + 1
    y_ticks = nice_ticks(0.0, max(ys), 4)

    def px(x: float) -> float:
        return left + (tx(x) - x_lo) / (x_hi - x_lo) * (right - left)

    def py(y: float) -> float:
        return bottom - y / y_ticks[-1] * (bottom - top) if y_ticks[-1] else bottom

    body = [_rect(left, top, right - left, bottom - top, "c-panel")]
    for tick in y_ticks:
        body.append(f'<line x1="{_f(left)}" x2="{_f(right)}" y1="{_f(py(tick))}" y2="{_f(py(tick))}" class="c-grid"/>')
        body.append(_text(left - 6, py(tick) + 4, tick_label(tick, y_ticks), "axis", "end"))
    for x in sorted(set(xs)):
        body.append(_text(px(x), bottom + 14, _short(x), "axis", "middle"))
    body.append(_text((left + right) / 2, height - 4, x_label, "axis", "middle"))
    body.append(_text(left, top - 10, y_label, "ptitle"))
    if ideal:
        body.append(f'<polyline points="{" ".join(f"{_f(px(x))},{_f(py(y))}" for x, y in ideal)}" class="c-ideal"/>')
    for k, (name, pts) in enumerate(series.items()):
        css = f"series s{k % 6}"
        ordered = sorted(p for p in pts if not log_x or p[0] > 0)
        body.append(f'<polyline points="{" ".join(f"{_f(px(x))},{_f(py(y))}" for x, y in ordered)}" class="{css}"/>')
        for x, y in ordered:
            body.append(
                f'<circle cx="{_f(px(x))}" cy="{_f(py(y))}" r="3" class="dot s{k % 6}">'
                f"<title>{escape(name)}: {escape(_short(x))} → {fmt_number(y, 1)}</title></circle>"
            )
        body.append(f'<rect x="{_f(right + 12)}" y="{_f(top + k * 18)}" width="11" height="3" class="key s{k % 6}"/>')
        body.append(_text(right + 28, top + k * 18 + 5, _clip_text(name, 120), "lbl", full=name))
    return _svg(width, height, body, title or y_label)


def _short(value: float) -> str:
    """1024 -> 1K, 1048576 -> 1M: byte sizes on an axis."""
    for unit, scale in (("G", 2**30), ("M", 2**20), ("K", 2**10)):
        if value >= scale and value % scale == 0:
            return f"{int(value // scale)}{unit}"
    return fmt_number(value, 0) if value == int(value) else fmt_number(value, 2)
