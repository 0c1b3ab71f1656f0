"""`svdops report`: run folders and check results -> one self-contained HTML file.

    frames    run folders and check files -> pandas frames (the only reader of the run store here)
    charts    inline SVG: bars, stacked bars, VRAM against capacity, telemetry over time, x/y lines
    render    frames -> jinja2 templates (templates/) -> HTML; `--export` of the merged table

pandas is needed (the `[bench]` or `[report]` extra); nothing here needs torch or a GPU.
"""

from __future__ import annotations

from svdops.report.render import ReportOptions, ReportResult, build_report, render_html, write_report
from svdops.report.selection import RANK_METRICS, Prices, RunFilter, parse_host_prices, parse_since

__all__ = [
    "RANK_METRICS",
    "Prices",
    "ReportOptions",
    "ReportResult",
    "RunFilter",
    "build_report",
    "parse_host_prices",
    "parse_since",
    "render_html",
    "write_report",
]
