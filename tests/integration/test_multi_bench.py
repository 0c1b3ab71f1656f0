"""Real torchrun, real gloo process groups, the real `tiny` pipeline on the CPU: all four workloads,
2 and 4 ranks, the merged run folder, a killed rank, a hung rank and a rank that raises.

Every test here starts several Python processes that import torch (and most, diffusers): tens of
seconds each on a small machine, hence `slow` and the tiny, one-step configurations.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from svdops.bench import environment
from svdops.bench.config import BenchRequest
from svdops.bench.multi import MultiRequest
from svdops.bench.multi.launcher import run_multi
from svdops.cli.bench import bench
from svdops.runs.store import list_runs, load_run

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def no_facts():
    # Host facts have their own tests; on the CPU they hold no topology anyway.
    return None, "facts skipped in this test"


def tiny(tmp_path: Path, workload: str, nproc: int = 2, **options) -> MultiRequest:
    bench_options = {"scenario": "tiny", "device": "cpu", "store": str(tmp_path / "runs"), "iterations": 1,
                     "warmup": 0, "steps": 1}  # fmt: skip
    bench_options.update({k: options.pop(k) for k in list(options) if k in BenchRequest.__dataclass_fields__})
    return MultiRequest(bench=BenchRequest(**bench_options), workload=workload, nproc_per_node=nproc, **options)


def only_run(tmp_path: Path):
    """The store holds the one committed run and nothing half-written (the staging folder is gone)."""
    entries = list((tmp_path / "runs").iterdir())
    assert len(entries) == 1 and not entries[0].name.startswith("."), entries
    return load_run(entries[0])


def when_rank_has(staging: Path, rank: int, phase: str, act):
    """Call act(pid) from a thread once `rank` has logged a finished `phase` record."""

    def watch():
        path = staging / f"rank-{rank}.json"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                doc = json.loads(path.read_text())
            except (OSError, ValueError):
                doc = {}
            if any(r["phase"] == phase for r in doc.get("records", [])):
                act(doc["pid"])
                return
            time.sleep(0.1)

    threading.Thread(target=watch, daemon=True).start()


def test_infer_dp_two_ranks(tmp_path):
    outcome = run_multi(tiny(tmp_path, "infer-dp", iterations=2), gather=no_facts)
    assert outcome.status == "ok", outcome.failure
    run = only_run(tmp_path)
    assert run.read_notes == []
    scaling = run.results.scaling
    assert scaling.workload == "infer-dp" and scaling.world_size == 2
    assert [r["videos"] for r in scaling.per_rank] == [2, 2]
    assert scaling.throughput.videos == 4 and scaling.throughput.value > 0
    assert scaling.baseline.source.startswith("rank 0 alone") and 0 < scaling.efficiency < 2
    phases = [(r["rank"], r["phase"], r["iteration"]) for r in run.table("iterations")]
    assert phases == [(0, "solo", 0), (0, "solo", 1), (0, "parallel", 0), (0, "parallel", 2),
                      (1, "parallel", 1), (1, "parallel", 3)]  # fmt: skip
    assert run.results.weights.kind == "random-init" and run.results.backend == "gloo"
    assert run.versions.torch and run.config.point["frames"] == 4
    assert "no GPUs in this run" in " ".join(run.results.notes)
    assert "OMP_NUM_THREADS" in (run.path / "torchrun.log").read_text()  # torchrun's own output is kept


def test_infer_cfg_four_ranks_match_the_single_process_output(tmp_path):
    outcome = run_multi(tiny(tmp_path, "infer-cfg", nproc=4, steps=2), gather=no_facts)
    assert outcome.status == "ok", outcome.failure
    scaling = only_run(tmp_path).results.scaling
    assert [(r["pair"], r["role"]) for r in scaling.per_rank] == [
        (0, "uncond+decode"), (0, "cond"), (1, "uncond+decode"), (1, "cond")]  # fmt: skip
    check = scaling.check
    # Rank 0 made the same video alone with the unsplit UNet (no collective at all): same seed, same output.
    assert check["matches"], check
    assert check["max_abs_diff"] <= 1e-3 * max(check["max_abs_reference"], 1.0)
    assert scaling.throughput.pairs == 2 and scaling.latency_s > 0 and scaling.speedup > 0


def test_train_ddp_two_ranks_with_gradient_checkpointing(tmp_path):
    # Checkpointing is the default: without it SVD-XT's activations fit no card.
    outcome = run_multi(tiny(tmp_path, "train-ddp", iterations=2, warmup=1), gather=no_facts)
    assert outcome.status == "ok", outcome.failure
    run = only_run(tmp_path)
    scaling = run.results.scaling
    assert scaling.gradient_checkpointing is True and scaling.autocast == "bf16"
    assert run.results.ranks[0]["result"]["batch_sizing"]["source"].startswith("--videos-per-call or the scenario")
    assert scaling.throughput.unit == "samples/s" and scaling.throughput.value > 0
    assert scaling.baseline.samples_per_s > 0 and scaling.efficiency > 0
    assert scaling.gradient_bytes == 4 * run.results.ranks[0]["result"]["parameters"]
    losses = [r["loss"] for r in run.table("iterations")]
    assert len(losses) == 3 + 3 * 2 and all(0 < loss < 100 for loss in losses)  # solo + 2 ranks, warm-up included


def test_nccl_sweep_four_ranks(tmp_path):
    outcome = run_multi(tiny(tmp_path, "nccl", nproc=4, nccl_max_bytes=4 * 2**20), gather=no_facts)
    assert outcome.status == "ok", outcome.failure
    run = only_run(tmp_path)
    rows = run.results.nccl
    assert [r.size_bytes for r in rows] == [2**20, 2**21, 2**22]
    for r in rows:
        assert r.algbw_gbps > 0 and r.busbw_gbps == pytest.approx(r.algbw_gbps * 1.5)  # 2(n-1)/n, n=4
        assert r.expected_busbw_gbps is None  # no GPU link to expect anything of
    assert [r["size_bytes"] for r in run.table("nccl")] == [2**20, 2**21, 2**22]
    assert run.results.scaling is None and run.results.world_size == 4


def test_cli_runs_the_nccl_sweep_and_keeps_the_single_gpu_path(tmp_path, monkeypatch):
    monkeypatch.setattr(environment, "gather_local_facts", lambda use_nvml: no_facts())
    args = ["--scenario", "tiny", "--device", "cpu", "--store", str(tmp_path / "runs")]
    result = CliRunner().invoke(bench, [*args, "--workload", "nccl", "--nproc-per-node", "2", "--nccl-max-mb", "2"])
    assert result.exit_code == 0, result.output
    assert "busbw GB/s" in result.output and "2 MB" in result.output and "(ok)" in result.output
    (run,) = list_runs(tmp_path / "runs")
    assert run.results.kind == "multi"
    script = tmp_path / "job.sbatch"
    result = CliRunner().invoke(bench, [*args, "--workload", "infer-dp", "--nproc-per-node", "8", "--nnodes", "2",
                                        "--rdzv-endpoint", "x:1", "--slurm-script", str(script)])  # fmt: skip
    assert result.exit_code == 0 and "sbatch" in result.output and os.access(script, os.X_OK)
    assert len(list_runs(tmp_path / "runs")) == 1  # writing the script runs nothing
    if not torch.cuda.is_available():
        # One GPU and no workload is the single-GPU bench on that GPU.
        result = CliRunner().invoke(bench, ["--scenario", "tiny", "--gpus", "3", "--store", str(tmp_path / "runs")])
        assert result.exit_code == 2 and "--device cuda:3" in result.output


def test_a_killed_rank_fails_the_run_naming_it_and_keeps_finished_work(tmp_path):
    killed_at = []

    def kill(pid):
        killed_at.append(time.monotonic())
        os.kill(pid, signal.SIGKILL)

    outcome = run_multi(
        tiny(tmp_path, "infer-dp", iterations=4),
        gather=no_facts,
        on_launch=lambda staging: when_rank_has(staging, 1, "parallel", kill),
    )
    done = time.monotonic()
    assert outcome.status == "failed"
    failure = outcome.failure
    assert failure.rank == 1 and failure.how == "died" and "SIGKILL" in failure.error, failure
    assert killed_at and done - killed_at[0] < 60  # torchrun stops the survivors; nothing waits on the dead
    run = only_run(tmp_path)
    assert run.status == "failed" and run.results.failure.rank == 1
    kept = {(r["rank"], r["phase"]) for r in run.table("iterations")}
    assert (1, "parallel") in kept and (0, "solo") in kept  # finished before the kill: kept
    statuses = {r["rank"]: r["status"] for r in run.results.ranks}
    assert statuses[1] == "running" and statuses[0] in ("interrupted", "failed")


def test_a_hung_rank_is_stopped_after_the_rank_timeout(tmp_path):
    stopped = []

    def freeze(pid):
        stopped.append(pid)
        os.kill(pid, signal.SIGSTOP)

    start = time.monotonic()
    outcome = run_multi(
        tiny(tmp_path, "infer-dp", iterations=3, rank_timeout_s=5),
        gather=no_facts,
        on_launch=lambda staging: when_rank_has(staging, 1, "parallel", freeze),
    )
    assert stopped and time.monotonic() - start < 240
    failure = outcome.failure
    assert failure.how == "stalled" and failure.rank == 1, failure
    assert "rank-timeout" in failure.error and "rank 1 was at: parallel" in failure.error
    with pytest.raises(ProcessLookupError):
        os.kill(stopped[0], 0)  # the launcher killed the frozen rank too, not only torchrun


def test_a_rank_that_raises_fails_the_command_naming_the_rank(tmp_path, monkeypatch):
    monkeypatch.setattr(environment, "gather_local_facts", lambda use_nvml: no_facts())
    # A snapshot whose model_index.json names every component but holds no weights: the launcher's
    # check (a folder with model_index.json) passes, and each rank fails when it loads the pipeline.
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    components = {"unet": ["diffusers", "UNetSpatioTemporalConditionModel"],
                  "vae": ["diffusers", "AutoencoderKLTemporalDecoder"],
                  "image_encoder": ["transformers", "CLIPVisionModelWithProjection"],
                  "scheduler": ["diffusers", "EulerDiscreteScheduler"],
                  "feature_extractor": ["transformers", "CLIPImageProcessor"]}  # fmt: skip
    index = {"_class_name": "StableVideoDiffusionPipeline", "_diffusers_version": "0.42.1", **components}
    (snapshot / "model_index.json").write_text(json.dumps(index))
    args = ["--scenario", "tiny", "--device", "cpu", "--store", str(tmp_path / "runs"), "--workload", "infer-dp",
            "--nproc-per-node", "2", "--iterations", "1", "--warmup", "0", "--steps", "1",
            "--weights", str(snapshot)]  # fmt: skip
    result = CliRunner().invoke(bench, args)
    assert result.exit_code == 4, result.output
    run = only_run(tmp_path)
    failure = run.results.failure
    assert failure.how == "exception" and failure.rank in (0, 1)
    assert f"rank {failure.rank} failed: svdops.errors.BadInputError" in result.output, result.output
    assert "cannot load the pipeline from this snapshot" in result.output
    assert str(run.path) in result.output and "Traceback" not in result.output
    assert "Traceback" in run.results.ranks[failure.rank]["traceback"]  # kept for whoever debugs it


def test_two_hosts_meet_over_c10d_and_rank_0s_host_gets_every_rank(tmp_path):
    """Two launchers on this machine stand in for two hosts: one rank each, c10d rendezvous, own stores."""
    from svdops.bench.models import import_stack

    import_stack()  # imported once here: two threads importing diffusers lazily at once trip over each other
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    outcomes = {}

    def host(i):
        request = tiny(tmp_path / f"host{i}", "nccl", nproc=1, nnodes=2, rdzv_endpoint=f"127.0.0.1:{port}",
                       nccl_max_bytes=2**21, rank_timeout_s=120)  # fmt: skip
        outcomes[i] = run_multi(request, gather=no_facts)

    threads = [threading.Thread(target=host, args=(i,)) for i in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=280)
    assert {o.status for o in outcomes.values()} == {"ok"}, {i: o.failure for i, o in outcomes.items()}
    by_view = {tuple(r["status"] for r in o.results.ranks): o for o in outcomes.values()}
    head = by_view[("ok", "ok")]  # rank 0's host: its own log and the other host's, gathered at the end
    other = next(o for view, o in by_view.items() if view != ("ok", "ok"))
    assert head.results.nnodes == 2 and head.results.world_size == 2
    assert [r.size_bytes for r in head.results.nccl] == [2**20, 2**21]
    assert any("host of rank 0 has every rank" in note for note in other.results.notes)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_stopping_the_launcher_stops_every_rank_and_keeps_finished_work(tmp_path, signum):
    store = tmp_path / "runs"
    argv = [sys.executable, "-m", "svdops.bench", "--scenario", "tiny", "--device", "cpu", "--store", str(store),
            "--workload", "infer-dp", "--nproc-per-node", "2", "--iterations", "20", "--warmup", "0",
            "--steps", "1"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    pids: list[int] = []
    while time.monotonic() < deadline and not pids:
        for log in store.glob(".tmp-multi-*/rank-1.json"):
            with contextlib.suppress(OSError, ValueError):
                doc = json.loads(log.read_text())
                if any(r["phase"] == "parallel" for r in doc.get("records", [])):
                    pids = [json.loads(p.read_text())["pid"] for p in log.parent.glob("rank-*.json")]
        time.sleep(0.2)
    assert pids, "no rank finished a video in time"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # no rank outlives the launcher
    (run,) = list_runs(store)
    assert run.status == "interrupted" and run.results.failure.how == "interrupted"
    assert {(r["rank"], r["phase"]) for r in run.table("iterations")} >= {(0, "solo"), (1, "parallel")}
