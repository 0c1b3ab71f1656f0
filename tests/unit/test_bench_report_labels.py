"""The report keeps optimized runs apart from reference runs: an fp8 + compiled point is not the eager one."""

from __future__ import annotations

from datetime import timedelta

from svdops.report.frames import config_label, groups_frame, optimize_label, points_frame
from svdops.runs.store import load_run
from tests.unit.test_report import T0, make_run, point


def test_optimized_and_reference_runs_are_labelled_and_grouped_apart(tmp_path):
    store = tmp_path / "runs"
    later = T0 + timedelta(hours=1)
    make_run(store, when=T0, points=[point(0, e2e=20.0)])  # written before --optimize existed: no key
    make_run(store, when=later, points=[point(0, e2e=22.0, optimize="none", compile_mode="default")])
    make_run(store, when=later + timedelta(hours=1),
             points=[point(0, e2e=11.0, optimize="max", compile=True, compile_mode="max-autotune")])  # fmt: skip
    make_run(store, when=later + timedelta(hours=2), points=[point(0, e2e=13.0, optimize="safe")])
    runs = [load_run(path) for path in sorted(store.iterdir())]
    groups = groups_frame(points_frame(runs)).set_index("config")["e2e_p50_s"].to_dict()
    assert groups == {
        "25f 576x1024 25 steps chunk 8 fp16": 21.0,  # the two reference runs, and only they
        "25f 576x1024 25 steps chunk 8 fp16 optimize max max-autotune compiled": 11.0,
        "25f 576x1024 25 steps chunk 8 fp16 optimize safe": 13.0,
    }


def test_a_point_that_ran_eagerly_is_not_labelled_compiled(tmp_path):
    store = tmp_path / "runs"
    compiled, eager = point(0, e2e=15.0, compile=True), point(1, e2e=21.0, compile=True)
    compiled["summary"]["compile"] = {"compiled": True, "recompile_limit_hit": False}
    eager["summary"]["compile"] = {"compiled": False, "recompile_limit_hit": True, "why": "Dynamo hit ..."}
    make_run(store, points=[compiled, eager])
    labels = list(points_frame([load_run(next(store.iterdir()))])["config"])
    assert labels == ["25f 576x1024 25 steps chunk 8 fp16 compiled", "25f 576x1024 25 steps chunk 8 fp16 ran eager"]
    assert config_label({"compile": True}) == "compiled"  # no record of what Dynamo did: as requested


def test_the_optimize_label_reads_short_text_only():
    assert optimize_label({"optimize": "safe", "compile_mode": "default"}) == "optimize safe"
    assert optimize_label({"optimize": "none", "compile": True, "compile_mode": "reduce-overhead"}) == "reduce-overhead"
    assert optimize_label({"optimize": "none", "compile": False, "compile_mode": "reduce-overhead"}) is None
    assert optimize_label({"optimize": ["max"] * 10**5, "compile_mode": {"a": 1}}) is None  # hostile: left out
    assert optimize_label({"optimize": "m" * 10**6}) == "optimize " + "m" * 40
