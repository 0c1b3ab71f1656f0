"""The launcher's pure parts: options -> plan, torchrun and Slurm command lines, torchrun's failure report."""

from __future__ import annotations

import shlex
import sys
import time

import pytest

from svdops.bench.config import BenchRequest
from svdops.bench.multi import MultiRequest
from svdops.bench.multi.launcher import (
    LaunchPlan,
    bench_argv,
    device_entries,
    nvidia_smi_indices,
    parse_gpus,
    parse_torchrun_failures,
    plan_launch,
    read_heartbeats,
    slurm_script,
    split_endpoint,
    stall_report,
    torchrun_argv,
    wants_multi,
    worker_env,
)
from svdops.bench.multi.rank import RankLog, heartbeat_path, rank_log_path
from svdops.cli.bench import bench
from svdops.errors import BadInputError
from svdops.host.probe.gather import gather_facts
from svdops.host.shell import RecordedShell

# What torchrun 2.13 printed when rank 1 of 2 was killed with SIGKILL (tests/integration runs it for real).
TORCHRUN_KILLED = """\
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
============================================================
svdops.bench.multi.worker FAILED
------------------------------------------------------------
Failures:
[1]:
  time      : 2026-11-28_19:44:31
  host      : localhost
  rank      : 0 (local_rank: 0)
  exitcode  : 1 (pid: 17941)
  error_file: <N/A>
  traceback : To enable traceback see: https://pytorch.org/docs/stable/elastic/errors.html
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-11-28_19:44:28
  host      : localhost
  rank      : 1 (local_rank: 1)
  exitcode  : -9 (pid: 17947)  (SIGKILL)
  error_file: <N/A>
  traceback : Signal 9 (SIGKILL) received by PID 17947
============================================================
"""


def request(**options) -> MultiRequest:
    bench_options = {k: options.pop(k) for k in list(options) if k in BenchRequest.__dataclass_fields__}
    return MultiRequest(bench=BenchRequest(**{"scenario": "tiny", **bench_options}), **options)


def test_parse_gpus():
    assert parse_gpus(None) is None and parse_gpus("all") is None and parse_gpus("ALL") is None
    assert parse_gpus("0,1,3") == (0, 1, 3)
    for bad in ("0,0", "x", "-1", ","):
        with pytest.raises(BadInputError):
            parse_gpus(bad)


def test_which_options_take_the_multi_path():
    assert not wants_multi(None, None, None, None)
    assert not wants_multi(None, (0,), "0", None)  # one GPU: the single-GPU bench
    assert wants_multi(None, (0, 1), "0,1", None)
    assert wants_multi(None, None, "all", None)
    assert wants_multi("nccl", None, None, None)
    assert wants_multi(None, None, None, 2)


def test_cpu_plan_uses_gloo_and_defaults_to_two_ranks():
    plan = plan_launch(request(device="cpu", workload="nccl"), visible_gpus=0)
    assert (plan.device, plan.backend, plan.nproc_per_node, plan.world_size, plan.gpus) == ("cpu", "gloo", 2, 2, ())
    plan = plan_launch(request(device="cpu", nproc_per_node=4, nnodes=2, rdzv_endpoint="h:1"), visible_gpus=0)
    assert plan.world_size == 8


def test_gpu_plan_picks_gpus():
    assert plan_launch(request(), visible_gpus=4).gpus == (0, 1, 2, 3)
    assert plan_launch(request(gpus=(1, 3)), visible_gpus=4).gpus == (1, 3)
    assert plan_launch(request(nproc_per_node=2), visible_gpus=8).gpus == (0, 1)
    assert plan_launch(request(), visible_gpus=4).backend == "nccl"


@pytest.mark.parametrize(
    ("options", "visible", "where"),
    [
        ({"gpus": (0, 5)}, 4, "--gpus"),
        ({}, 0, "--gpus"),  # no GPU and no --device cpu: the hint says how to dry-run
        ({"device": "cpu", "gpus": (0,)}, 0, "--gpus"),
        ({"gpus": (0, 1), "nproc_per_node": 3}, 4, "--nproc-per-node"),
        ({"nnodes": 2}, 4, "--nnodes"),
        ({"nnodes": 2, "rdzv_endpoint": "nohost"}, 4, "--rdzv-endpoint"),
        ({"nnodes": 2, "rdzv_endpoint": "h:1", "node_rank": 2}, 4, "--node-rank"),
        ({"sweep": ("frames=4,8",)}, 4, "--sweep"),
        ({"workload": "render"}, 4, "--workload"),
        ({"device": "cuda:1"}, 4, "--device"),
        ({"device": "cpu", "scenario": "svd-xt-25f"}, 0, "--scenario"),
        ({"workload": "infer-cfg", "gpus": (0, 1, 2)}, 4, "--workload"),
    ],
)
def test_bad_requests_name_the_option(options, visible, where):
    with pytest.raises(BadInputError) as info:
        plan_launch(request(**options), visible_gpus=visible)
    assert info.value.where == where and (info.value.hint or where == "--node-rank")


def test_endpoint():
    assert split_endpoint("node0:29500") == ("node0", 29500)
    assert split_endpoint("[::1]:29500") == ("::1", 29500)
    with pytest.raises(BadInputError):
        split_endpoint("node0:99999")


def plan(**overrides) -> LaunchPlan:
    base = {"workload": "infer-dp", "device": "cuda", "gpus": (0, 1), "nproc_per_node": 2, "nnodes": 1,
            "node_rank": None, "rdzv_endpoint": None, "rank_timeout_s": 600.0}  # fmt: skip
    return LaunchPlan(**{**base, **overrides})


def test_torchrun_command_lines(tmp_path, monkeypatch):
    spec = tmp_path / "spec.json"
    argv = torchrun_argv(plan(), spec, python="py")
    assert argv[:3] == ["py", "-m", "torch.distributed.run"] and "--standalone" in argv
    assert argv[-4:] == ["-m", "svdops.bench.multi.worker", "--spec", str(spec)]
    assert argv[argv.index("--max-restarts") + 1] == "0"  # a failed benchmark is not retried
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.delenv("SVDOPS_RDZV_ID", raising=False)
    argv = torchrun_argv(plan(nnodes=2, rdzv_endpoint="node0:29400"), spec)
    assert argv[argv.index("--rdzv-backend") + 1] == "c10d"
    assert argv[argv.index("--rdzv-endpoint") + 1] == "node0:29400"
    assert argv[argv.index("--rdzv-id") + 1] == "4242" and "--standalone" not in argv
    argv = torchrun_argv(plan(nnodes=2, rdzv_endpoint="node0:29400", node_rank=1), spec)
    assert argv[argv.index("--node-rank") + 1] == "1"
    assert argv[argv.index("--master-addr") + 1] == "node0" and argv[argv.index("--master-port") + 1] == "29400"


def test_worker_env_orders_gpus_as_nvidia_smi_does():
    env = worker_env(plan(gpus=(2, 5)), base={"PATH": "/bin"})
    assert env["CUDA_VISIBLE_DEVICES"] == "2,5" and env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert "CUDA_VISIBLE_DEVICES" not in worker_env(plan(device="cpu", gpus=()), base={})


def test_a_schedulers_gpu_list_is_indexed_not_replaced(host_dir):
    slurm = {"CUDA_VISIBLE_DEVICES": "4,6,7"}
    assert worker_env(plan(gpus=(0, 2)), base=slurm)["CUDA_VISIBLE_DEVICES"] == "4,7"
    assert device_entries(plan(gpus=(1,)), base=slurm) == ["6"]
    facts = gather_facts(RecordedShell(host_dir("h100-x8-nvlink")))
    uuid = facts.gpus[3].uuid
    assert nvidia_smi_indices(["5", uuid, "GPU-unknown"], facts) == [5, 3, None]
    assert nvidia_smi_indices(["1"], None) == [1]


def test_slurm_script_runs_the_same_bench_on_every_node():
    req = request(workload="train-ddp", nproc_per_node=8, nnodes=4, steps=5, grad_checkpointing=True,
                  nccl_max_bytes=64 * 2**20, rank_timeout_s=300)  # fmt: skip
    script = slurm_script(req, python="/opt/py")
    assert script.startswith("#!/bin/bash\n")
    assert "#SBATCH --nodes=4" in script and "#SBATCH --gpus-per-node=8" in script
    assert "#SBATCH --ntasks-per-node=1" in script
    assert 'export SVDOPS_RDZV_ID="$SLURM_JOB_ID"' in script
    line = script[script.index("srun --") :].replace("\\\n", " ")
    argv = shlex.split(line)
    assert argv[:5] == ["srun", "--kill-on-bad-exit=1", "/opt/py", "-m", "svdops.bench"]
    options = argv[5:]
    assert options[-4:] == ["--nnodes", "$SLURM_NNODES", "--rdzv-endpoint", "$head:29500"]
    # Every option the script passes is one the bench command accepts, with a valid value.
    ctx = bench.make_context("bench", [*options[:-4], "--nnodes", "4", "--rdzv-endpoint", "node0:29500"])
    assert ctx.params["workload"] == "train-ddp" and ctx.params["grad_checkpointing"] is True
    assert ctx.params["nccl_max_mb"] == 64 and ctx.params["steps"] == 5 and ctx.params["rank_timeout"] == 300


def test_slurm_script_needs_a_gpu_count():
    with pytest.raises(BadInputError, match="GPUs per node"):
        slurm_script(request(nnodes=2))
    assert "--gpus-per-node=2" in slurm_script(request(gpus=(0, 1)))


def test_bench_argv_keeps_the_pipeline_options():
    args = bench_argv(request(frames=8, height=64, dtype="bf16", telemetry=False, gpus=(0, 1)))
    assert args[args.index("--frames") + 1] == "8" and args[args.index("--dtype") + 1] == "bf16"
    assert "--no-telemetry" in args and args[args.index("--gpus") + 1] == "0,1"


def test_torchrun_failure_report():
    failures = parse_torchrun_failures(TORCHRUN_KILLED)
    assert failures[1] == {"exitcode": -9, "pid": 17947, "message": "Signal 9 (SIGKILL) received by PID 17947",
                           "root_cause": True}  # fmt: skip
    assert failures[0]["exitcode"] == 1 and failures[0]["root_cause"] is False
    assert parse_torchrun_failures("all fine\n") == {}


def test_heartbeats_and_the_stall_report(tmp_path):
    for rank, activity in ((0, "waiting: rank 0's one-GPU baseline"), (1, "parallel 3: step 2")):
        RankLog(rank_log_path(tmp_path, rank), heartbeat_path(tmp_path, rank)).heartbeat(activity)
    beats = read_heartbeats(tmp_path)
    assert beats[1][0] == "parallel 3: step 2" and abs(beats[0][1] - time.time()) < 60
    report = stall_report(beats, world_size=3, idle_s=12.3)
    assert report["suspects"] == [1, 2] and report["never_reported"] == [2]
    assert report["activities"]["0"]["activity"].startswith("waiting")


def test_python_is_this_interpreter_by_default(tmp_path):
    assert torchrun_argv(plan(), tmp_path / "s.json")[0] == sys.executable


def test_slurm_script_carries_every_option_the_bench_was_given():
    """Each BenchRequest field set away from its default reaches the nodes' bench unchanged
    (--compile-mode and --compile-cache were dropped, so the nodes compiled another way)."""
    bench_options = {"scenario": "tiny", "device": "cuda", "dtype": "bf16", "decode_chunk": 4, "steps": 7,
                     "frames": 8, "height": 128, "width": 192, "videos_per_call": 2, "compile": True,
                     "iterations": 3, "warmup": 2, "seed": 11, "store": "/scratch/runs", "weights": "/models/svd",
                     "telemetry": False, "telemetry_hz": 20.0, "compile_mode": "max-autotune",
                     "compile_cache": "/scratch/inductor"}  # fmt: skip
    # --sweep and --optimize run on one GPU only (the CLI refuses them with a workload).
    assert set(BenchRequest.__dataclass_fields__) - set(bench_options) == {"sweep", "optimize"}
    req = MultiRequest(bench=BenchRequest(**bench_options), workload="infer-dp", nproc_per_node=4, nnodes=2)
    line = slurm_script(req, python="/opt/py")
    options = shlex.split(line[line.index("srun --") :].replace("\\\n", " "))[5:-4]
    params = bench.make_context("bench", [*options, "--nnodes", "2", "--rdzv-endpoint", "n0:1"]).params
    cli_names = {"telemetry": "no_telemetry", "compile": "compile_unet"}
    for name, value in bench_options.items():
        got = params[cli_names.get(name, name)]
        assert got == (not value if name == "telemetry" else value), (name, got, value)


MIG_PARENT = "GPU-27b94a00-ed54-5c24-b1fd-1054085de32a"  # the MIG-mode A100 of the smi corpus (netdata)
MIG_DEVICE = "MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f"  # R470+ form, as nvidia-smi -L lists a MIG device


def test_mig_devices_keep_their_prefix_for_nvml():
    from pathlib import Path

    from svdops.bench.multi.topology import nvml_identity
    from svdops.host.facts import HostFacts
    from svdops.host.probe.gpu import parse_nvidia_smi_xml

    xml = Path(__file__).parents[1] / "fixtures/corpus/smi_xml/netdata__a100-sxm4-mig.xml"
    (gpu,) = parse_nvidia_smi_xml(xml.read_text()).gpus
    assert gpu.uuid == MIG_PARENT and gpu.mig_enabled
    bare = MIG_DEVICE.removeprefix("MIG-")
    # torch reports a MIG slice by name ("... MIG 1g.5gb") and its UUID without a prefix.
    assert nvml_identity(None, bare, "NVIDIA A100-SXM4-40GB MIG 1g.5gb", 0) == MIG_DEVICE
    assert nvml_identity(None, bare, "NVIDIA A100-SXM4-40GB", 0) == f"GPU-{bare}"
    # The scheduler's own entry is what NVML knows the device by, legacy MIG-GPU-…/GI/CI form included.
    assert nvml_identity(MIG_DEVICE, bare, "NVIDIA A100-SXM4-40GB", 0) == MIG_DEVICE
    legacy = f"MIG-{MIG_PARENT}/1/0"
    assert nvml_identity(legacy, None, None, None) == legacy
    assert nvml_identity("3", None, "NVIDIA H100", 3) == 3  # no UUID from torch: nvidia-smi's index
    assert nvml_identity("0", "GPU-" + bare, "NVIDIA H100", 0) == "GPU-" + bare
    # CUDA_VISIBLE_DEVICES entries of MIG devices keep their identity; the parent GPU (for NUMA
    # pinning) is known for the legacy form, not for the R470+ UUID.
    facts = HostFacts(hostname="mig", collected_at="", source="test", gpus=(gpu,))
    assert nvidia_smi_indices([legacy, MIG_DEVICE, MIG_PARENT], facts) == [0, None, 0]
    slurm = {"CUDA_VISIBLE_DEVICES": f"{MIG_DEVICE},MIG-{bare[:-1]}0"}
    assert worker_env(plan(gpus=(0, 1)), base=slurm)["CUDA_VISIBLE_DEVICES"] == slurm["CUDA_VISIBLE_DEVICES"]


def test_train_ddp_checkpoints_gradients_unless_told_not_to():
    assert MultiRequest().grad_checkpointing is True
    assert bench.make_context("bench", ["--workload", "train-ddp"]).params["grad_checkpointing"] is True
    assert "--grad-checkpointing" not in bench_argv(request(workload="train-ddp"))
    args = bench_argv(request(workload="train-ddp", grad_checkpointing=False))
    assert "--no-grad-checkpointing" in args
    assert bench.make_context("bench", args).params["grad_checkpointing"] is False
