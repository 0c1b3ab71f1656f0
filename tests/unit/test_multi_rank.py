"""Rank barriers on real gloo process groups: a wait longer than the collective timeout is no failure.

Rank 0's one-GPU baseline can take many minutes (5 iterations at 160 s on a slow card) while the
other ranks wait; the process group's timeout (rank timeout + 60 s) bounds every collective, so a
collective barrier there killed every rank while rank 0 worked. Two real processes here, a 2 s
collective timeout and a 5 s baseline.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

RANK_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from datetime import timedelta
    from pathlib import Path
    import torch, torch.distributed as dist
    from svdops.bench.multi.rank import RankContext, RankLog, rendezvous_store

    rank, staging, baseline_s = int(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
    dist.init_process_group("gloo", timeout=timedelta(seconds=2))
    log = RankLog(staging / f"rank-{rank}.json", staging / f"rank-{rank}.beat")
    ctx = RankContext(rank=rank, world_size=2, local_rank=rank, device="cpu", backend="gloo", spec={}, log=log,
                      dist=dist, torch=torch, store=rendezvous_store(dist))
    ctx.barrier("every rank warmed up")
    start = time.monotonic()
    if rank == 0:
        time.sleep(baseline_s)  # the solo baseline, longer than the collective timeout
    ctx.barrier("rank 0's one-GPU baseline")
    waited = time.monotonic() - start
    t = torch.ones(1) * (rank + 1)
    dist.all_reduce(t)  # the group is still whole afterwards
    ctx.barrier("the end")
    (staging / f"out-{rank}.json").write_text(json.dumps({"waited": waited, "sum": float(t)}))
    dist.destroy_process_group()
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_two_ranks(tmp_path: Path, source: str, *args: str) -> None:
    """`source` as ranks 0 and 1 of a real two-process gloo group (argv: rank, tmp_path, *args); both must exit 0."""
    script = tmp_path / "rank.py"
    script.write_text(source)
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "WORLD_SIZE": "2",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "OMP_NUM_THREADS": "1"}  # fmt: skip
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(r), str(tmp_path), *args],
            env={**env, "RANK": str(r)},
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for r in range(2)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs


def test_a_baseline_longer_than_the_collective_timeout_does_not_kill_the_waiting_rank(tmp_path):
    run_two_ranks(tmp_path, RANK_SCRIPT, "5")
    waited = json.loads((tmp_path / "out-1.json").read_text())["waited"]
    assert waited >= 4.5  # rank 1 waited out the whole baseline, past the 2 s timeout
    assert json.loads((tmp_path / "out-0.json").read_text())["sum"] == 3.0
    # It said it was waiting (the launcher's watchdog tells waiting from hung by this), then moved on.
    assert (tmp_path / "rank-1.beat").read_text() == "past the end"


LAST_OUT_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from datetime import timedelta
    from pathlib import Path
    import torch, torch.distributed as dist
    from svdops.bench.multi.rank import RankContext, RankLog, rendezvous_store

    rank, staging = int(sys.argv[1]), Path(sys.argv[2])
    dist.init_process_group("gloo", timeout=timedelta(seconds=10))
    log = RankLog(staging / f"rank-{rank}.json", staging / f"rank-{rank}.beat")
    ctx = RankContext(rank=rank, world_size=2, local_rank=rank, device="cpu", backend="gloo", spec={}, log=log,
                      dist=dist, torch=torch, store=rendezvous_store(dist))
    if rank == 0:
        time.sleep(1.0)  # rank 1 is already polling the store, between two polls
    ctx.barrier("the end")
    if rank == 0:
        os._exit(0)  # the store's host leaves at once, as a process that has nothing left to do
    (staging / "rank-1.done").write_text("ok")
    os._exit(0)
    """
)


def test_the_store_host_leaves_the_last_barrier_only_after_every_rank_has(tmp_path):
    """Rank 0 hosts the TCPStore here (no torchrun agent): leaving the last barrier and exiting
    while rank 1 still polled it failed rank 1 with "recvValue failed ... remote server shutdown"."""
    run_two_ranks(tmp_path, LAST_OUT_SCRIPT)
    assert (tmp_path / "rank-1.done").read_text() == "ok"
