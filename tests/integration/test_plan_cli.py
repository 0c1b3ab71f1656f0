"""`svdops plan` as a person runs it: the table, JSON, prices, validation on a real tiny CPU run."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from svdops.cli.plan import plan


def test_table_ranks_the_cards_and_says_what_it_rests_on():
    result = CliRunner().invoke(plan, ["--scenario", "svd-xt-25f", "--gpus", "L4,H200,B200"])
    assert result.exit_code == 0, result.output
    lines = result.output
    assert lines.index("B200") < lines.index("H200") < lines.index("L4")
    assert "calibrated on: A100 SXM 80GB (1 points), H100 SXM (6 points)" in lines and "other arch" in lines
    assert "band cross-arch" in lines and "held-out points" in lines  # bands say what stands behind them


def test_json_box_with_a_price_override():
    result = CliRunner().invoke(plan, ["--gpus", "L40S", "--count", "8", "--price", "L40S=1", "--format", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["schema"] == "svdops.plan/1" and doc["count"] == 8
    (row,) = doc["predictions"]
    assert row["gpu"] == "L40S" and row["price_usd_per_hour"] == 1.0 and row["fits"] == "yes"
    assert row["usd_per_1000_videos"]["value"] == pytest.approx(8000 / row["videos_per_hour"]["value"])
    assert row["e2e_s"]["low"] < row["e2e_s"]["value"] < row["e2e_s"]["high"]
    assert "no Ada Lovelace measurement" in row["unet_step_s"]["basis"]
    assert row["power_bound"] is False and row["sustained_mhz"] == 2520  # 350 W is enough for its boost


def test_low_vram_scenario_and_bad_input():
    result = CliRunner().invoke(plan, ["--scenario", "low-vram", "--gpus", "RTX 3090", "--format", "json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)["predictions"]
    assert row["workload"]["cpu_offload"] and row["peak_allocated_gib"]["value"] < 8
    for args, text in ((["--price", "L40S"], "GPU=USD_PER_GPU_HOUR"), (["--gpus", "GTX 480"], "unknown GPU"),
                       (["--no-anchors"], "nothing to calibrate on"), (["--scenario", "tiny"], "runs on the CPU")):
        result = CliRunner().invoke(plan, args)
        assert result.exit_code == 2 and text in result.output, (args, result.output)
        assert "Traceback" not in result.output


def test_validate_holds_out_every_card_of_the_shipped_set_and_says_where_each_figure_is_from():
    result = CliRunner().invoke(plan, ["--validate", "--format", "json"])
    doc = json.loads(result.output)
    # the RTX 3090 public figure is missed by more than the 5% same-architecture target: exit 1, honestly
    assert result.exit_code == 1 and doc["possible"]
    held = {r["held_out"] for r in doc["rows"]}
    assert {"H100 SXM", "A100 SXM 80GB", "RTX 3090"} <= held
    for row in doc["rows"]:
        assert row["source"] and row["settings"] and row["band_points"] >= 0
    assert {e["point"] for e in doc["excluded"]} == {"public:h100pcie-stability-tensorrt",
                                                      "public:a100sxm-stability-tensorrt"}
    assert [n["point"] for n in doc["not_scored"]] == ["public:rtx4090-gigagpu-blog"]
    assert doc["bands"]["cross-arch"]["points"] >= 2
    table = CliRunner().invoke(plan, ["--validate"])
    assert table.exit_code == 1 and "source public:a800-comfyui-onediff-409: https://github.com/siliconflow" in (
        table.output.replace("\n", ""))


def test_validate_with_only_one_card_cannot_hold_one_out(tmp_path):
    result = CliRunner().invoke(plan, ["--validate", "--no-anchors", str(tmp_path)])
    assert result.exit_code == 2 and "no runs in this folder" in result.output


@pytest.mark.slow
def test_validate_and_calibrate_on_a_real_tiny_cpu_run(tmp_path, monkeypatch):
    pytest.importorskip("diffusers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from svdops.bench import BenchRequest, run_bench

    # the bench's own core, as `svdops bench --scenario tiny` runs it (its CLI has its own tests)
    request = BenchRequest(scenario="tiny", device="cpu", iterations=1, warmup=0, steps=2, store=str(tmp_path),
                           telemetry=False)
    run_bench(request, gather=lambda: (None, "facts skipped in this test"))
    result = CliRunner().invoke(plan, ["--validate", str(tmp_path), "--format", "json"])
    assert result.exit_code in (0, 1), result.output  # 1: the shipped RTX 3090 row misses its target
    doc = json.loads(result.output)
    cpu_rows = [r for r in doc["rows"] if r["relation"] == "cpu"]
    assert doc["possible"] and cpu_rows and all(r["target"] is None for r in cpu_rows)
    result = CliRunner().invoke(plan, ["--validate", "--no-anchors", str(tmp_path), "--format", "json"])
    assert result.exit_code == 0 and "cannot hold one out" in json.loads(result.output)["message"]
    # the CPU run calibrates only the CPU: the GPU predictions still rest on the H100
    result = CliRunner().invoke(plan, ["--calibrate-from", str(tmp_path), "--gpus", "H200", "--format", "json"])
    assert result.exit_code == 0 and "H100 SXM" in json.loads(result.output)["predictions"][0]["unet_step_s"]["basis"]
    from svdops.plan import predict_for_runs
    from svdops.runs.store import list_runs

    rows = predict_for_runs(list_runs(tmp_path))
    assert rows and rows[0]["gpu"] == "cpu" and rows[0]["unet_step_s_measured"] > 0
    assert "code path only" in rows[0]["note"]
