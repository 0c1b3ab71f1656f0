"""Merging rank logs: scaling arithmetic, the failing rank, and the run folder on disk."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime

import pytest

from svdops.bench.config import BenchRequest
from svdops.bench.multi import MultiRequest
from svdops.bench.multi.launcher import LaunchPlan, LaunchResult
from svdops.bench.multi.merge import find_failure, nccl_entries, read_rank_logs, scaling_entry, write_run
from svdops.bench.multi.nccl_sweep import bus_bandwidth, sweep_sizes
from svdops.bench.multi.rank import record_row
from svdops.bench.multi.topology import LinkReport, expected_busbw
from svdops.files import atomic_write_json
from svdops.runs.documents import Failure, NcclRow
from svdops.runs.store import load_run
from svdops.telemetry import TelemetrySample

MB = 2**20


def row(phase, i, seconds, items=1, warmup=False, step=None, loss=None):
    return record_row(phase, i, seconds=seconds, items=items, warmup=warmup, steps_s=[step] if step else None,
                      loss=loss)  # fmt: skip


def rank_doc(rank, records, status="ok", **result):
    return {"rank": rank, "host": "h", "gpu_index": rank, "device": f"cuda:{rank}", "status": status,
            "pid": 1000 + rank, "records": records, "result": result}  # fmt: skip


def ok_launch(**changes):
    return LaunchResult(**{"returncode": 0, "log_text": "", **changes})


def test_infer_dp_efficiency_against_rank_0_alone():
    docs = {
        0: rank_doc(0, [row("warmup", 0, 9.0, warmup=True), row("solo", 0, 10.0), row("solo", 1, 10.0),
                        row("parallel", 0, 11.0), row("parallel", 2, 11.0)],
                    parallel_wall_s=22.0, videos=2),
        1: rank_doc(1, [row("parallel", 1, 12.0), row("parallel", 3, 12.0)], parallel_wall_s=24.0, videos=2),
    }  # fmt: skip
    s = scaling_entry("infer-dp", 2, docs)
    assert s.baseline.videos_per_hour == pytest.approx(360.0)  # one video per 10 s
    assert s.throughput.value == pytest.approx(4 * 3600 / 24.0)  # 4 videos, slowest rank 24 s
    assert s.efficiency == pytest.approx(600.0 / 720.0)
    assert s.speedup == pytest.approx(600.0 / 360.0)
    assert [r["videos"] for r in s.per_rank] == [2, 2]
    assert s.per_rank[1]["videos_per_hour"] == pytest.approx(300.0)
    assert s.per_rank[0]["e2e_s"]["median"] == 11.0  # warm-up and solo rows are not the parallel phase


def test_infer_dp_one_rank_is_its_own_baseline():
    docs = {0: rank_doc(0, [row("parallel", 0, 10.0)], parallel_wall_s=10.0, videos=1)}
    s = scaling_entry("infer-dp", 1, docs)
    assert s.efficiency == pytest.approx(1.0) and s.baseline.source == "the only rank"


def test_infer_dp_with_a_missing_rank_has_no_total():
    docs = {0: rank_doc(0, [row("solo", 0, 10.0), row("parallel", 0, 11.0)], parallel_wall_s=11.0, videos=1)}
    s = scaling_entry("infer-dp", 2, docs)
    assert s.throughput.value is None and s.efficiency is None
    assert s.per_rank[1]["status"] == "missing"


def test_infer_cfg_latency_speedup_and_check():
    check = {"matches": True, "max_abs_diff": 1e-6, "tolerance": 1e-3}
    docs = {
        0: rank_doc(0, [row("solo", 0, 10.0, step=0.4), row("parallel", 0, 6.0, step=0.21)], pair=0,
                    role="uncond+decode", videos_per_call=1, check=check),
        1: rank_doc(1, [row("parallel", 0, 5.0, step=0.21)], pair=0, role="cond"),
    }  # fmt: skip
    s = scaling_entry("infer-cfg", 2, docs)
    assert s.latency_s == 6.0  # the decoding rank's end to end
    assert s.speedup == pytest.approx(10.0 / 6.0) and s.efficiency == pytest.approx(10.0 / 12.0)
    assert s.throughput.value == pytest.approx(600.0) and s.throughput.pairs == 1
    assert s.baseline.unet_step_s == 0.4 and s.check == check
    assert [r["role"] for r in s.per_rank] == ["uncond+decode", "cond"]


def test_train_ddp_samples_per_second():
    def steps(phase, seconds):
        return [row("warmup", 0, 5.0, items=2, warmup=True, loss=1.0)] + [
            row(phase, i, seconds, items=2, loss=0.5) for i in range(1, 4)
        ]

    docs = {
        0: rank_doc(0, steps("solo", 1.0) + steps("parallel", 1.25), batch_per_rank=2, gradient_bytes=400),
        1: rank_doc(1, steps("parallel", 1.3), batch_per_rank=2),
    }
    s = scaling_entry("train-ddp", 2, docs)
    assert s.baseline.samples_per_s == pytest.approx(2.0)
    assert s.throughput.value == pytest.approx(4 / 1.3)  # lockstep: the slowest rank's step
    assert s.efficiency == pytest.approx((4 / 1.3) / 4.0)
    assert s.per_rank[0]["final_loss"] == 0.5 and s.gradient_bytes == 400


def test_nccl_sizes_and_bus_bandwidth():
    assert sweep_sizes(16 * MB) == [MB, 2 * MB, 4 * MB, 8 * MB, 16 * MB]
    assert sweep_sizes(4 * 2**30)[-1] == 4 * 2**30 and len(sweep_sizes(4 * 2**30)) == 13
    assert sweep_sizes(3 * MB) == [MB, 2 * MB, 3 * MB]
    assert bus_bandwidth(100.0, 8) == pytest.approx(175.0)  # nccl-tests: 2(n-1)/n
    assert bus_bandwidth(100.0, 2) == pytest.approx(100.0)
    rows = [{"size_bytes": MB, "algbw_gbps": 1.0, "busbw_gbps": 1.0, "expected_busbw_gbps": 20.0}]
    assert nccl_entries({1: {"result": {"nccl": rows}}, 0: {"result": {}}}) == [NcclRow(**rows[0])]
    assert scaling_entry("nccl", 2, {}) is None


# --- which rank failed ----------------------------------------------------------------------------


def test_all_ok_is_no_failure():
    docs = {0: rank_doc(0, []), 1: rank_doc(1, [])}
    assert find_failure(docs, 2, ok_launch()) is None


def test_a_killed_rank_is_named_with_its_signal():
    docs = {0: rank_doc(0, [], status="interrupted"), 1: rank_doc(1, [], status="running")}
    causes = {1: {"exitcode": -9, "pid": 1001, "message": "Signal 9", "root_cause": True},
              0: {"exitcode": 1, "pid": 1000, "message": None, "root_cause": False}}  # fmt: skip
    failure = find_failure(docs, 2, ok_launch(returncode=1, root_causes=causes))
    assert failure.rank == 1 and failure.how == "died" and "SIGKILL" in failure.error


def test_the_first_rank_to_raise_is_the_cause():
    docs = {
        0: {**rank_doc(0, [], status="failed"), "error": "RuntimeError: Connection closed by peer", "failed_unix": 5.0},
        1: {**rank_doc(1, [], status="failed"), "error": "ValueError: bad shape", "failed_unix": 4.0},
    }
    failure = find_failure(docs, 2, ok_launch(returncode=1))
    assert failure == Failure(rank=1, ranks=[1, 0], how="exception", error="ValueError: bad shape")


def test_a_stalled_run_names_the_busy_rank():
    activities = {"0": {"activity": "waiting: x", "age_s": 31}, "1": {"activity": "step 3", "age_s": 40}}
    stalled = {"idle_s": 31.0, "suspects": [1], "never_reported": [], "activities": activities}
    failure = find_failure({0: rank_doc(0, [], status="interrupted")}, 2, ok_launch(returncode=-15, stalled=stalled))
    assert failure.rank == 1 and failure.how == "stalled" and "step 3" in failure.error


def test_torchrun_failing_before_any_rank_reports():
    failure = find_failure({}, 2, ok_launch(returncode=1))
    assert failure.how == "missing" and failure.ranks == [0, 1] and "code 1" in failure.error


# --- the folder -----------------------------------------------------------------------------------


def test_write_run_merges_ranks_and_telemetry(tmp_path):
    staging = tmp_path / "store" / ".tmp-multi-x"
    staging.mkdir(parents=True)
    (staging / "torchrun.log").write_text("torchrun said hello\n")
    for rank in (0, 1):
        sample = TelemetrySample(t_unix=1.0 + rank, t_mono=2.0, power_w=300.0 + rank, clocks_event_mask=4)
        doc = rank_doc(rank, [row("parallel", rank, 10.0)], parallel_wall_s=10.0, videos=1)
        doc.update(telemetry=[sample.as_row()], marks=[[1.0, 2.0, "parallel:0:start", None, None]],
                   gpu_name="NVIDIA H100 80GB HBM3", config={"frames": 4})  # fmt: skip
        if rank == 0:
            doc["records"].insert(0, row("solo", 0, 10.0))
            doc["versions"] = {"torch": "2.13"}
        atomic_write_json(staging / f"rank-{rank}.json", doc)
    (staging / "rank-9.json.partial").write_text("{")  # not a rank log: ignored
    assert sorted(read_rank_logs(staging)) == [0, 1]

    request = MultiRequest(bench=BenchRequest(scenario="tiny", store=str(tmp_path / "store")), workload="infer-dp")
    plan = LaunchPlan("infer-dp", "cuda", (0, 1), 2, 1, None, None, 600.0)
    links = LinkReport(gpus=(0, 1), link_type="nvlink", expected=expected_busbw("nvlink", 4), warnings=("w",))
    outcome = write_run(
        staging=staging, request=request, plan=plan, links=links, facts=None, facts_note=None,
        launch=ok_launch(wall_s=12.0), started=datetime.now(UTC), name="run-x", command=["torchrun"],
    )  # fmt: skip
    assert outcome.status == "ok" and outcome.failure is None
    run = load_run(outcome.path)
    results = run.results
    assert run.read_notes == []  # what the merge writes reads back whole
    assert results.kind == "multi" and results.points == [] and results.gpu == "NVIDIA H100 80GB HBM3"
    assert results.scaling.workload == "infer-dp" and results.scaling.efficiency == pytest.approx(1.0)
    assert results.topology["expected_busbw_gbps"] == 370.0 and "w" in results.notes
    assert results.telemetry.per_rank["1"].power_w_max == 301.0
    assert run.versions.torch == "2.13" and run.versions.diffusers is None
    assert run.config.plan["gpus"] == [0, 1]
    iterations = run.table("iterations")
    assert [(r["rank"], r["phase"]) for r in iterations] == [(0, "solo"), (0, "parallel"), (1, "parallel")]
    with (outcome.path / "telemetry.csv").open() as fh:
        telemetry = list(csv.DictReader(fh))
    assert [(t["rank"], t["gpu"], t["clocks_event_reasons"]) for t in telemetry] == [
        ("0", "0", "sw_power_cap"), ("1", "1", "sw_power_cap")]  # fmt: skip
    assert run.table("marks")[0]["rank"] == 0
    assert (outcome.path / "torchrun.log").read_text() == "torchrun said hello\n"
    assert not (outcome.path / "nccl.csv").exists()
    json.dumps(results.to_json(), allow_nan=False)  # plain JSON all the way down


def test_a_rank_out_of_memory_makes_an_oom_run_like_a_single_gpu_point(tmp_path):
    staging = tmp_path / "store" / ".tmp-multi-oom"
    staging.mkdir(parents=True)
    error = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 GiB"
    atomic_write_json(staging / "rank-0.json", {**rank_doc(0, [], status="oom"), "error": error, "failed_unix": 3.0})
    atomic_write_json(staging / "rank-1.json", rank_doc(1, [], status="interrupted"))
    request = MultiRequest(bench=BenchRequest(scenario="tiny", store=str(tmp_path / "store")), workload="train-ddp")
    plan = LaunchPlan("train-ddp", "cuda", (0, 1), 2, 1, None, None, 600.0)
    links = LinkReport(gpus=(0, 1), link_type=None)
    outcome = write_run(
        staging=staging, request=request, plan=plan, links=links, facts=None, facts_note=None,
        launch=ok_launch(returncode=1), started=datetime.now(UTC), name="run-oom", command=["torchrun"],
    )  # fmt: skip
    assert outcome.status == "oom"
    assert outcome.failure.how == "oom" and outcome.failure.rank == 0 and "out of memory" in outcome.failure.error
    run = load_run(outcome.path)
    assert run.results.status == "oom" and run.read_notes == []


def test_the_worker_tells_out_of_memory_from_other_errors():
    import torch

    from svdops.bench.multi.worker import _is_oom

    assert _is_oom(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert not _is_oom(ValueError("bad shape"))


@pytest.mark.parametrize(
    ("capacity_gib", "fixed_gib", "per_sample_gib", "batch"),
    [
        (141.0, 40.0, 20.0, 3),  # (141 x 0.85 - 40) / 20 = 3.99
        (80.0, 40.0, 20.0, 1),  # 28 GiB usable: one sample
        (80.0, 60.0, 20.0, 0),  # not even one: the rank will run out of memory, and says so
        (1000.0, 10.0, 1.0, 8),  # capped: a bigger batch only makes the step longer
    ],
)
def test_train_ddp_sizes_the_batch_from_the_card(capacity_gib, fixed_gib, per_sample_gib, batch):
    from svdops.bench.multi.train_ddp import fitting_batch

    gib = 2**30
    assert fitting_batch(capacity_gib * gib, fixed_gib * gib, per_sample_gib * gib) == batch
