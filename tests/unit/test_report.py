"""svdops report: run folders -> frames -> HTML, on recorded example runs and runs built to be awkward."""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime, timedelta
from html import escape
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from svdops.cli.main import cli
from svdops.errors import BadInputError
from svdops.plan.prices import parse_gpu_prices
from svdops.report import (
    Prices,
    ReportOptions,
    RunFilter,
    build_report,
    charts,
    parse_host_prices,
    parse_since,
    render_html,
    write_report,
)
from svdops.report.checks import load_checks
from svdops.report.frames import groups_frame, points_frame
from svdops.report.run_fields import run_host
from svdops.report.scaling import nccl_frame, scaling_frame
from svdops.report.selection import find_runs, price_for
from svdops.runs.store import RunWriter, load_run, run_name

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "reports" / "examples"
EXAMPLE_RUNS = EXAMPLES / "runs"
T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


# --- building runs ------------------------------------------------------------------------------------


def summary(e2e: float, *, step: float = 0.5, energy: float | None = 9000.0, alloc: float | None = 12.0) -> dict:
    def stat(v: float) -> dict:
        return {"n": 3, "median": v, "p90": v * 1.1, "min": v * 0.9, "max": v * 1.2}

    return {
        "iterations": 3,
        "e2e_s": stat(e2e),
        "clip_s": stat(0.1),
        "vae_encode_s": stat(0.2),
        "unet_s": stat(e2e * 0.8),
        "decode_s": stat(e2e * 0.1),
        "unet_step_s": stat(step),
        "videos_per_hour": 3600 / e2e,
        "frames_per_s": 25 / e2e,
        "unet_tflops": 160 / step,
        "peak_tflops": 989.4,
        "mfu": 160 / step / 989.4,
        "peak_allocated_gib": alloc,
        "peak_reserved_gib": None if alloc is None else 30.0,
        "energy_j_per_video": energy,
        "telemetry": {"samples": 10, "power_w_median": 650.0, "throttled": False, "power_capped": True},
    }


def point(index: int = 0, status: str = "ok", e2e: float = 20.0, error: str | None = None, **config) -> dict:
    base = {
        "frames": 25,
        "height": 576,
        "width": 1024,
        "steps": 25,
        "decode_chunk": 8,
        "dtype": "fp16",
        "videos_per_call": 1,
        "compile": False,
    }
    return {
        "point": index,
        "config": {**base, **config},
        "status": status,
        "error": error,
        "iterations_done": 3 if status == "ok" else 0,
        "summary": summary(e2e) if status == "ok" else {},
    }


def make_run(
    store: Path,
    host: str = "gpu01",
    scenario: str = "svd-xt-25f",
    *,
    when: datetime = T0,
    points: list[dict] | None = None,
    status: str = "ok",
    facts: object = "default",
    gpu: str | None = "NVIDIA H100 80GB HBM3",
    telemetry: bool = True,
    notes: list[str] | None = None,
    extra: dict | None = None,
) -> Path:
    if facts == "default":
        facts = {"hostname": host, "gpus": [{"name": gpu, "memory_total_mib": 81559, "power_limit_w": 700.0}]}
    results = {
        "schema": "svdops.bench.results/1",
        "status": status,
        "scenario": scenario,
        "device": "cuda:0",
        "gpu": gpu,
        "weights": {"kind": "random-init", "description": "random-init (svd-xt architecture)"},
        "started_at": when.isoformat(),
        "finished_at": (when + timedelta(seconds=90)).isoformat(),
        "points": points if points is not None else [point()],
        "notes": notes or [],
        "telemetry": {"summary": {"samples": 40 if telemetry else 0, "power_limit_w": 700.0}},
        **(extra or {}),
    }
    with RunWriter(store, run_name(host, scenario, when)) as writer:
        writer.write_json("facts.json", facts)
        writer.write_json("config.json", {"weights": results["weights"]})
        writer.write_json("results.json", results)
        writer.write_json(
            "versions.json",
            {
                "torch": "2.11.0+cu130",
                "torch_cuda": "13.0",
                "cudnn": 91900,
                "diffusers": "0.42.1",
                "driver": "580.159.04",
                "gpu": gpu,
            },
        )
        if telemetry:
            rows = [
                [
                    1e9 + i * 0.1,
                    100 + i * 0.1,
                    40 + i,
                    300 + 10 * i,
                    700.0,
                    1980 - (i % 3) * 60,
                    2619,
                    99,
                    40,
                    3e4,
                    1e6 + i * 65_000,
                    4 if i > 20 else (0x20 if 10 < i < 14 else 0),
                    "",
                ]
                for i in range(40)
            ]
            writer.write_csv(
                "telemetry.csv",
                [
                    "t_unix",
                    "t_mono",
                    "temp_c",
                    "power_w",
                    "power_limit_w",
                    "sm_mhz",
                    "mem_mhz",
                    "util_gpu_pct",
                    "util_mem_pct",
                    "mem_used_mib",
                    "energy_mj",
                    "clocks_event_mask",
                    "clocks_event_reasons",
                ],
                rows,
            )
            marks = [
                [1e9, 100.2, "iteration:start", 0, 0],
                [1e9, 100.3, "unet:start", 0, 0],
                [1e9, 102.5, "unet:end", 0, 0],
                [1e9, 102.5, "decode:start", 0, 0],
                [1e9, 103.4, "decode:end", 0, 0],
            ]
            writer.write_csv("marks.csv", ["t_unix", "t_mono", "label", "point", "iteration"], marks)
        return writer.commit()


class StrictTagBalance(HTMLParser):
    """Well-formedness without html5lib: every non-void element closed, in order, nothing left open."""

    VOID = frozenset({"meta", "link", "br", "img", "input", "hr", "col", "area", "base", "source", "wbr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, tuple[int, int]]] = []
        self.errors: list[str] = []
        self.tags: dict[str, int] = {}

    def handle_starttag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1
        if tag not in self.VOID:
            self.stack.append((tag, self.getpos()))

    def handle_startendtag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1  # <line/>, <polyline/> in SVG

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1][0] != tag:
            self.errors.append(f"</{tag}> at {self.getpos()} closes {self.stack[-1] if self.stack else 'nothing'}")
            return
        self.stack.pop()


def assert_well_formed(html: str) -> StrictTagBalance:
    parser = StrictTagBalance()
    parser.feed(html)
    parser.close()
    assert parser.errors == []
    assert parser.stack == [], f"unclosed: {parser.stack[:5]}"
    assert html.startswith("<!DOCTYPE html>")
    return parser


def assert_self_contained(html: str) -> None:
    """Nothing a browser would fetch: no script, no URL in any tag or in the stylesheet. URLs in text
    (a check's hint naming a package index) are text, never requested; the browser test proves it."""
    assert "<script" not in html.lower()
    assert "default-src 'none'" in html
    tags = re.findall(r"<[a-zA-Z][^>]*>", html)
    for tag in tags:
        # The SVG namespace is an identifier, never fetched.
        cleaned = tag.replace('xmlns="http://www.w3.org/2000/svg"', "")
        for needle in ("http:", "https:", "//", " src=", ' href="h', "url("):
            assert needle not in cleaned, tag
    style = html[html.index("<style>") : html.index("</style>")]
    assert "url(" not in style and "@import" not in style and "@font-face" not in style


# --- the recorded examples --------------------------------------------------------------------------


def test_report_from_the_recorded_example_runs(tmp_path):
    checks = tuple(sorted((EXAMPLES / "checks").glob("*.json")))
    prices = Prices(hosts=parse_host_prices(["h100-sxm-reference=3.0", "cpu-*=0.1"]))
    options = ReportOptions(checks=checks, prices=prices)
    result = write_report([str(EXAMPLE_RUNS)], tmp_path / "report.html", options, export=tmp_path / "table.csv")
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    parser = assert_well_formed(html)
    assert_self_contained(html)
    assert (result.runs, result.points, result.hosts) == (6, 8, 2)  # the committed examples
    assert result.runs == len([p for p in EXAMPLE_RUNS.iterdir() if p.is_dir()])
    for section in (
        "ranking",
        "environment",
        "checks",
        "throughput",
        "stages",
        "vram",
        "telemetry",
        "energy",
        "cost",
        "runs",
    ):
        assert f'<section id="{section}">' in html, section
    assert 'id="scaling"' not in html and 'id="nccl"' not in html  # no multi-GPU runs among the examples
    assert parser.tags["svg"] >= 8
    # The converted H100 figures say what they are, and their numbers come through.
    assert "converted from anchors: diffusers defaults on H100 SXM, 2026-11-26" in html
    assert "187.7" in html and "19.18" in html and "0.664" in html  # videos/h, s/video, UNet s/step
    assert "24.4%" in html  # MFU of the SVD-XT reference
    assert "580.159.04" in html and "2.11.0+cu130" in html and "0.42.1" in html
    assert "oom" in html and "interrupted" in html
    table = pd.read_csv(tmp_path / "table.csv")
    assert len(table) == result.points
    xt = table[(table["host"] == "h100-sxm-reference") & (table["steps"] == 25) & (table["frames"] == 25)].iloc[0]
    assert xt["videos_per_hour"] == pytest.approx(3600 / 19.183, rel=1e-3)
    assert xt["cost_per_1000_usd"] == pytest.approx(3.0 / xt["videos_per_hour"] * 1000)
    assert 11_000 < xt["energy_j_per_video"] < 14_000  # the anchors: about 13 kJ per SVD-XT video


def test_the_shipped_example_report_is_current_and_small():
    html = (EXAMPLES / "report.html").read_text(encoding="utf-8")
    assert_well_formed(html)
    assert_self_contained(html)
    total = sum(p.stat().st_size for p in EXAMPLES.rglob("*") if p.is_file())
    assert total < 2_000_000
    for run in EXAMPLE_RUNS.iterdir():
        assert run.name in html  # every example run is in the example report


# --- runs with pieces missing --------------------------------------------------------------------------


def awkward_store(tmp_path: Path) -> Path:
    store = tmp_path / "runs"
    make_run(store, "gpu01", when=T0)
    make_run(
        store,
        "gpu02",
        when=T0 + timedelta(minutes=1),
        status="oom",
        telemetry=False,
        points=[point(status="oom", error="OutOfMemoryError: CUDA out of memory. Tried to allocate 9 GiB")],
    )
    make_run(store, "gpu-03-b", when=T0 + timedelta(minutes=2), facts=None, telemetry=False)
    make_run(
        store,
        "gpu04",
        when=T0 + timedelta(minutes=3),
        status="interrupted",
        points=[point(e2e=30.0), point(1, status="interrupted", decode_chunk=4)],
        notes=["interrupted: 2 finished iteration(s) kept"],
    )
    # The bare minimum a reader could meet: a results.json with a status and nothing else.
    bare = store / "20261126T100400Z-gpu05-svd-xt-25f"
    bare.mkdir()
    (bare / "results.json").write_text('{"status": "failed"}')
    # Half a run: its writer was killed before the rename.
    (store / ".tmp-20261126T100500Z-gpu06-svd-xt-25f-123").mkdir()
    (store / ".tmp-20261126T100500Z-gpu06-svd-xt-25f-123" / "results.json").write_text("{}")
    return store


def test_runs_with_missing_fields_still_render(tmp_path):
    store = awkward_store(tmp_path)
    data = build_report([str(store)], ReportOptions())
    html = render_html(data)
    assert_well_formed(html)
    assert_self_contained(html)
    assert {"gpu01", "gpu02", "gpu-03-b", "gpu04", "gpu05"} == set(data.run_table["host"])
    assert "CUDA out of memory" in html and "host facts not recorded" in html and "interrupted" in html
    # A writer killed before its rename left a hidden folder: not a run, but the reader is told.
    assert len(data.skipped) == 1 and "unfinished run" in data.skipped[0] and "gpu06" in html
    points = data.points.set_index("host")
    assert pd.isna(points.loc["gpu02", "videos_per_hour"]) and points.loc["gpu02", "status"] == "oom"
    assert points.loc["gpu01", "encode_s"] == pytest.approx(0.3)
    assert points.loc["gpu01", "other_s"] == pytest.approx(20 - 0.3 - 16 - 2)
    assert "gpu05" not in set(data.points["host"])  # no points, but listed among the runs
    bare_notes = data.run_table.set_index("host").loc["gpu05", "notes"]
    assert bare_notes == ["results.json: no schema; read as svdops.bench.results/1"]
    telemetry_runs = {r.name for r in data.runs if (r.path / "telemetry.csv").exists()}
    assert html.count('class="telemetry"') == len(telemetry_runs) == 2


def test_a_run_folder_passed_as_a_tmp_folder_is_reported_as_skipped(tmp_path):
    store = awkward_store(tmp_path)
    selection = find_runs([str(store / "*gpu01*"), str(store / ".tmp-*")])
    assert [run_host(r) for r in selection.runs] == ["gpu01"]
    assert any("unfinished run" in s for s in selection.skipped)


def test_host_from_the_folder_name_when_facts_are_null(tmp_path):
    path = make_run(tmp_path, "gpu-03-b", "svd-xt-25f", facts=None)
    make_run(tmp_path, "gpu-03-b", "svd-xt-25f", facts=None)  # same second: committed as <name>-2
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names[1] == path.name + "-2"
    assert {run_host(load_run(tmp_path / n)) for n in names} == {"gpu-03-b"}


# --- untrusted text -------------------------------------------------------------------------------------


def test_host_names_notes_and_check_text_are_escaped(tmp_path):
    evil = '<script>alert("x")</script><img src=x onerror=1>'
    store = tmp_path / "runs"
    make_run(store, evil, notes=[evil], points=[point(status="failed", error=evil)], gpu=evil)
    check = {
        "schema": "svdops.check/1",
        "host": evil,
        "profile": evil,
        "summary": {"fail": 1},
        "failed": True,
        "findings": [{"id": "x", "title": evil, "status": "fail", "expected": evil, "actual": evil, "hint": evil}],
    }
    (tmp_path / "check.json").write_text(json.dumps(check))
    html = render_html(build_report([str(store)], ReportOptions(title=evil, checks=(tmp_path / "check.json",))))
    assert evil not in html and "<script" not in html and "<img" not in html
    assert "&lt;script&gt;" in html
    assert_well_formed(html)


def test_checks_that_could_not_look_are_listed_with_the_failures(tmp_path):
    # cpu-devbox.json: 4 required checks could not look (UNKNOWN). Not a pass: listed with their reason,
    # counted, never folded into the quiet "passed or skipped" line
    store = tmp_path / "runs"
    make_run(store, "cpu-devbox")
    doc = json.loads((EXAMPLES / "checks" / "cpu-devbox.json").read_text())
    unknown = [f for f in doc["findings"] if f["status"] == "unknown"]
    assert len(unknown) == doc["summary"]["unknown"] == 4
    html = render_html(build_report([str(store)], ReportOptions(checks=(EXAMPLES / "checks" / "cpu-devbox.json",))))
    table = html[html.index('<table class="data findings">'):]
    table = table[:table.index("</table>")]
    quiet = html[html.index('<p class="quiet">'):]
    quiet = quiet[:quiet.index("</p>")]
    for f in unknown:
        assert escape(f["title"]) in table and escape(f["title"]) not in quiet
    assert table.count('class="st st-unknown">UNKNOWN<') == 4
    assert "4 could not look" in html


# --- options ------------------------------------------------------------------------------------------------


def test_filters_by_host_scenario_and_since(tmp_path):
    store = tmp_path / "runs"
    make_run(store, "gpu01", "svd-xt-25f", when=T0)
    make_run(store, "gpu02", "svd-14f", when=T0 + timedelta(days=2))
    make_run(store, "lab-a100", "svd-xt-25f", when=T0 + timedelta(days=3))

    def hosts(**kw):
        return sorted(run_host(r) for r in find_runs([str(store)], RunFilter(**kw)).runs)

    assert hosts(hosts=("gpu0*",)) == ["gpu01", "gpu02"]
    assert hosts(scenarios=("svd-xt-25f",)) == ["gpu01", "lab-a100"]
    assert hosts(since=T0 + timedelta(days=1)) == ["gpu02", "lab-a100"]
    assert hosts(hosts=("gpu*", "lab-*"), scenarios=("svd-xt*",), since=T0) == ["gpu01", "lab-a100"]
    with pytest.raises(BadInputError, match="none matching host nope"):
        build_report([str(store)], ReportOptions(run_filter=RunFilter(hosts=("nope",))))


def test_since_accepts_dates_times_and_ages():
    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    assert parse_since("2026-11-26") == datetime(2026, 11, 26, tzinfo=UTC)
    assert parse_since("2026-11-26T10:30") == datetime(2026, 11, 26, 10, 30, tzinfo=UTC)
    assert parse_since("2026-11-26T10:30+01:00").utcoffset() == timedelta(hours=1)
    assert parse_since("12h", now) == now - timedelta(hours=12)
    assert parse_since("7d", now) == now - timedelta(days=7)
    assert parse_since("2w", now) == now - timedelta(weeks=2)
    with pytest.raises(BadInputError, match="--since"):
        parse_since("last tuesday")


def test_host_prices_parse_and_exact_names_win_over_patterns():
    prices = parse_host_prices(["*=1.5", "big-box=9", "gpu0*=2.49"])
    assert price_for("big-box", prices) == 9 and price_for("gpu01", prices) == 1.5  # first pattern that matches
    assert price_for("other", {"gpu*": 1.0}) is None
    for bad in ("gpu01", "gpu01=", "=2", "gpu01=cheap", "gpu01=-1", "gpu01=nan"):
        with pytest.raises(BadInputError, match="--host-price"):
            parse_host_prices([bad])


def test_price_means_a_gpu_hour_as_in_plan_and_a_host_price_wins():
    """--price is per GPU-hour of a table GPU in `report` exactly as in `plan`; --host-price prices a host."""
    prices = Prices(gpus=parse_gpu_prices(["NVIDIA H100 80GB HBM3=2.5"]), hosts=parse_host_prices(["big-*=9"]))
    assert prices.gpus == {"H100 SXM": 2.5}  # nvidia-smi's name and the table's price the same card
    assert prices.hourly("gpu01", "H100 SXM") == 2.5 and prices.hourly("gpu01", "NVIDIA H100 80GB HBM3", 8) == 20.0
    assert prices.hourly("big-box", "H100 SXM") == 9  # the whole host's price, not its GPUs'
    assert prices.hourly("gpu01", "NVIDIA L40S") is None and prices.hourly("gpu01", None) is None
    assert not Prices() and Prices(hosts={"a": 1.0})
    for bad in ("gpu01=2.5", "H100 SXM", "H100 SXM=-1", "H100 SXM=inf"):
        with pytest.raises(BadInputError, match="--price"):
            parse_gpu_prices([bad])


def test_ranking_by_each_metric_within_the_same_video(tmp_path):
    store = tmp_path / "runs"
    make_run(store, "fast-hot", points=[point(e2e=10.0)], when=T0)
    make_run(store, "slow-cool", points=[point(e2e=20.0)], when=T0 + timedelta(minutes=1))
    make_run(store, "other-video", points=[point(e2e=5.0, steps=3)], when=T0 + timedelta(minutes=2))
    runs = find_runs([str(store)]).runs
    points = points_frame(runs, Prices(hosts={"fast-hot": 10.0, "slow-cool": 2.0, "other-video": 1.0}))
    points.loc[points["host"] == "fast-hot", "energy_j_per_video"] = 20_000.0

    def order(metric):
        groups = groups_frame(points, metric)
        same = groups[groups["workload"] == "25 frames, 576x1024, 25 steps"]
        assert set(groups[groups["workload"] != "25 frames, 576x1024, 25 steps"]["rank"]) == {1}
        return list(same.sort_values("rank")["host"])

    assert order("videos_per_hour") == ["fast-hot", "slow-cool"]
    assert order("cost") == ["slow-cool", "fast-hot"]  # 2 USD/h at 180/h beats 10 USD/h at 360/h
    assert order("energy") == ["slow-cool", "fast-hot"]
    with pytest.raises(BadInputError, match="needs prices"):
        build_report([str(store)], ReportOptions(rank_by="cost"))


def test_groups_take_medians_over_runs_and_count_failures(tmp_path):
    store = tmp_path / "runs"
    for i, e2e in enumerate((10.0, 12.0, 30.0)):
        make_run(store, "gpu01", points=[point(e2e=e2e)], when=T0 + timedelta(minutes=i))
    make_run(store, "gpu01", points=[point(status="oom", error="OOM")], when=T0 + timedelta(minutes=9))
    groups = groups_frame(points_frame(find_runs([str(store)]).runs))
    (row,) = groups.to_dict("records")
    assert row["runs"] == 4 and row["failed"] == 1 and row["e2e_p50_s"] == 12.0
    assert row["statuses"] == "ok, oom"


def test_export_formats_follow_the_suffix(tmp_path):
    store = tmp_path / "runs"
    make_run(store)
    write_report([str(store)], tmp_path / "r.html", export=tmp_path / "t.parquet")
    assert pd.read_parquet(tmp_path / "t.parquet")["videos_per_hour"].iloc[0] == pytest.approx(180.0)
    with pytest.raises(BadInputError, match="export format"):
        write_report([str(store)], tmp_path / "r.html", export=tmp_path / "t.xlsx")


def test_missing_inputs_are_clear_errors(tmp_path):
    with pytest.raises(BadInputError, match="no such run folder"):
        find_runs([str(tmp_path / "nowhere")])
    with pytest.raises(BadInputError, match="no file or folder matches"):
        find_runs([str(tmp_path / "nothing-*")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInputError, match="no run to report: 0 run"):
        build_report([str(tmp_path / "empty")], ReportOptions())


# --- check files -----------------------------------------------------------------------------------------


def test_single_host_and_fleet_check_files(tmp_path):
    single = json.loads((EXAMPLES / "checks" / "h100-sxm-reference.json").read_text())
    fleet = {
        "schema": "svdops.fleet-check/1",
        "profile": "svd-host",
        "hosts": [
            {"name": "gpu07", "check": single | {"host": "gpu07"}},
            {"name": "gpu08", "status": "unreachable", "message": "connection refused", "check": None},
        ],
    }
    (tmp_path / "fleet.json").write_text(json.dumps(fleet))
    checks = load_checks([EXAMPLES / "checks" / "h100-sxm-reference.json", tmp_path / "fleet.json"])
    assert [h["host"] for h in checks.hosts] == ["h100-sxm-reference", "gpu07", "gpu08"]
    assert checks.hosts[2]["reachable"] is False and "connection refused" in checks.hosts[2]["message"]
    fails = checks.findings[checks.findings["status"] == "fail"]
    assert set(fails["host"]) == {"h100-sxm-reference", "gpu07"}
    # A file that is not a check result costs the report that file, with a note saying which and why.
    (tmp_path / "other.json").write_text('{"schema": "svdops.facts/1"}')
    (tmp_path / "broken.json").write_text("{")
    checks = load_checks([tmp_path / "other.json", EXAMPLES / "checks" / "cpu-devbox.json", tmp_path / "broken.json"])
    assert [h["host"] for h in checks.hosts] == ["cpu-devbox"]
    assert len(checks.skipped) == 2
    assert checks.skipped[0].startswith(f"{tmp_path / 'other.json'}: not an svdops check result")
    assert checks.skipped[1].startswith(f"{tmp_path / 'broken.json'}: not JSON")


# --- multi-GPU run kinds ----------------------------------------------------------------------------------


def multi_gpu_store(tmp_path: Path) -> Path:
    store = tmp_path / "runs"
    for world, vph in ((2, 360.0), (4, 700.0), (8, 1300.0)):
        make_run(
            store,
            "dgx01",
            when=T0 + timedelta(minutes=world),
            points=[],
            extra={
                "kind": "multi",
                "workload": "infer-dp",
                "world_size": world,
                "scaling": {
                    "workload": "infer-dp",
                    "world_size": world,
                    "throughput": {"value": vph, "unit": "videos/hour"},
                    "baseline": {"videos_per_hour": 187.7},
                    "speedup": vph / 187.7,
                    "efficiency": vph / 187.7 / world,
                },
            },
        )
    make_run(
        store,
        "dgx01",
        when=T0 + timedelta(minutes=30),
        points=[],
        extra={
            "kind": "multi",
            "workload": "nccl",
            "world_size": 8,
            "nccl": [
                {"size_bytes": 2**s, "algbw_gbps": 10.0 * s, "busbw_gbps": 17.5 * s, "expected_busbw_gbps": 400.0}
                for s in range(10, 31, 4)
            ],
        },
    )
    return store


def test_scaling_and_nccl_sections_render_when_runs_carry_them(tmp_path):
    store = multi_gpu_store(tmp_path)
    runs = find_runs([str(store)]).runs
    scaling = scaling_frame(runs)
    assert list(scaling["world_size"]) == [2, 4, 8] and scaling["efficiency"].iloc[-1] == pytest.approx(0.866, 1e-3)
    assert len(nccl_frame(runs)) == 6
    html = render_html(build_report([str(store)], ReportOptions()))
    assert_well_formed(html)
    assert '<section id="scaling">' in html and '<section id="nccl">' in html
    assert "multi-GPU scaling" in html and "NCCL all-reduce bandwidth" in html and "1G" in html


# --- charts -------------------------------------------------------------------------------------------------


def test_nice_ticks_cover_the_range_with_round_steps():
    assert charts.nice_ticks(0, 697, 3) == [0, 250, 500, 750]
    assert charts.nice_ticks(33, 63, 3) == [30, 40, 50, 60, 70]
    assert charts.nice_ticks(5, 5, 3)[0] <= 5 <= charts.nice_ticks(5, 5, 3)[-1]
    quarter = charts.nice_ticks(0, 0.9, 4)
    assert [charts.tick_label(t, quarter) for t in quarter] == ["0.00", "0.25", "0.50", "0.75", "1.00"]
    clocks = charts.nice_ticks(1800, 1980, 3)
    assert [charts.tick_label(t, clocks) for t in clocks] == ["1,800", "1,900", "2,000"]


def test_charts_say_why_a_value_is_missing_and_escape_labels():
    svg = charts.bar_chart([charts.Bar("<b>", 3.0), charts.Bar("cpu", None, note="CPU run")], unit="kJ")
    assert "&lt;b&gt;" in svg and "CPU run" in svg and "<b>" not in svg
    stacked = charts.stacked_bars([charts.Stack("x", {"a": None})], [charts.Segment("a", "A", "c-unet")])
    assert "no stage timings" in stacked


# --- CLI -----------------------------------------------------------------------------------------------------


def test_cli_writes_the_report_and_the_table(tmp_path):
    store = awkward_store(tmp_path)
    out, table = tmp_path / "out.html", tmp_path / "t.csv"
    result = CliRunner().invoke(
        cli,
        [
            "report",
            str(store),
            "-o",
            str(out),
            "--host",
            "gpu0*",
            "--host-price",
            "gpu01=2.5",
            "--rank-by",
            "cost",
            "--export",
            str(table),
            "--since",
            "2026-11-26",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "report: 4 run(s) from 4 host(s)" in result.output and str(out) in result.output
    assert out.stat().st_size > 10_000 and len(pd.read_csv(table)) == 4  # gpu-03-b filtered out; gpu04 has 2


def test_cli_exit_codes_for_bad_input(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["report", str(tmp_path / "nowhere"), "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 2 and "no such run folder" in result.output and "hint:" in result.output
    store = tmp_path / "runs"
    make_run(store)
    result = runner.invoke(cli, ["report", str(store), "--rank-by", "cost", "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 2 and "--price GPU=USD_PER_GPU_HOUR" in result.output and "--host-price" in result.output
    result = runner.invoke(cli, ["report", str(store), "--since", "soon", "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 2 and "--since" in result.output
    assert not (tmp_path / "r.html").exists()


def test_bench_report_option_writes_a_report_of_the_run(tmp_path, monkeypatch):
    """The wiring of `svdops bench --report`; the benchmark itself is replaced by a recorded run."""
    import svdops.bench
    from svdops.bench.records import BenchOutcome
    from svdops.runs.documents import Results

    run = shutil.copytree(next(EXAMPLE_RUNS.glob("*-cpu-devbox-tiny")), tmp_path / "store" / "r1")
    results = Results.read(json.loads((run / "results.json").read_text()))
    monkeypatch.setattr(
        svdops.bench,
        "run_bench",
        lambda request, **kw: BenchOutcome(path=run, status=results.status, results=results, points=[]),
    )
    out = tmp_path / "bench.html"
    result = CliRunner().invoke(
        cli, ["bench", "--scenario", "tiny", "--store", str(tmp_path / "store"), "--report", str(out)]
    )
    assert f"report: {out}" in result.output
    assert run.name in out.read_text(encoding="utf-8")
