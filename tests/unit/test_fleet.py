"""The fleet runner and the remote command line, without a network.

Hosts here are recorded folders behind RecordedShell, opened by a connector function: the runner
only sees Shells, so its concurrency, ordering, bundles and error handling are tested on real data.
SSH itself is tested against real sshd servers in tests/integration/test_fleet_ssh.py.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from svdops.host.fleet import (
    FleetOptions,
    HostResult,
    HostStatus,
    bundle_folder_name,
    fleet_exit_code,
    probe_fleet,
)
from svdops.host.inventory import Target
from svdops.host.probe.gather import gather_facts
from svdops.host.shell import RecordedShell, Shell
from svdops.host.ssh import SocketRegistry, SshAuthError, SshUnreachableError, remote_command_line
from tests.support.paths import recorded_host

H100 = recorded_host("h100-sxm-ubuntu2404")
H200 = recorded_host("h200-ubuntu2404")


def target(name: str) -> Target:
    return Target(name, "127.0.0.1", 22, "root")


def recorded(folders: dict[str, Path], delays: dict[str, float] | None = None) -> Callable[[Target], Shell]:
    def connect(t: Target) -> Shell:
        time.sleep((delays or {}).get(t.name, 0.0))
        if folders[t.name] is None:
            raise SshUnreachableError("connection refused on port 22", where=t.name, hint="is sshd running?")
        return RecordedShell(folders[t.name], name=t.name)

    return connect


# ---------------------------------------------------------------- the remote command line


NASTY = ("; touch {d}/pwned", "$(touch {d}/pwned2)", "`touch {d}/pwned3`", "a b\tc\nd", "'\"\\", "*", "", "-n")


def test_remote_command_line_survives_a_real_shell(tmp_path: Path) -> None:
    """What sshd hands the login shell must reach the program as the exact argv, nothing run."""
    args = tuple(a.format(d=tmp_path) for a in NASTY)
    line = remote_command_line(("printf", "%s\\0", *args), (("LC_ALL", "C"),))
    out = subprocess.run(["sh", "-c", line], capture_output=True, check=True).stdout
    assert out.split(b"\0")[:-1] == [a.encode() for a in args]
    assert not list(tmp_path.iterdir())


def test_remote_command_line_sets_the_environment_on_the_command_line() -> None:
    line = remote_command_line(("sh", "-c", "echo $LC_ALL"), (("LC_ALL", "C"),))
    assert line.startswith("env LC_ALL=C ")
    assert subprocess.run(["sh", "-c", line], capture_output=True, text=True, check=True).stdout == "C\n"


@pytest.mark.parametrize(("argv", "env"), [
    (("A=b",), ()),  # env would take the program name for an assignment
    (("ls",), (("LC ALL", "C"),)),
    (("ls",), (("X;rm", "C"),)),
    ((), ()),
])
def test_remote_command_line_refuses_what_env_would_misread(argv: tuple[str, ...],
                                                            env: tuple[tuple[str, str], ...]) -> None:
    with pytest.raises(ValueError):
        remote_command_line(argv, env)


# ---------------------------------------------------------------- the runner


def test_results_in_target_order_with_per_host_status() -> None:
    targets = [target("a"), target("down"), target("b")]
    results = probe_fleet(targets, FleetOptions(forks=3),
                          connect=recorded({"a": H100, "down": None, "b": H200}))  # type: ignore[dict-item]
    assert [r.target.name for r in results] == ["a", "down", "b"]
    assert [r.status for r in results] == [HostStatus.OK, HostStatus.UNREACHABLE, HostStatus.OK]
    assert results[0].facts is not None and results[0].facts.gpus[0].name == "NVIDIA H100 80GB HBM3"
    assert results[0].facts.source == "ssh://root@127.0.0.1:22"
    assert "refused" in results[1].message and results[1].hint


def test_error_kinds_map_to_statuses() -> None:
    def connect(t: Target) -> Shell:
        raise SshAuthError("authentication failed", where=t.name)

    (result,) = probe_fleet([target("x")], FleetOptions(), connect=connect)
    assert result.status is HostStatus.AUTH_FAILED


def test_a_bug_on_one_host_is_an_error_status_not_a_crash() -> None:
    def connect(t: Target) -> Shell:
        if t.name == "bad":
            raise KeyError("boom")
        return RecordedShell(H100, name=t.name)

    results = probe_fleet([target("bad"), target("good")], FleetOptions(), connect=connect)
    assert [r.status for r in results] == [HostStatus.ERROR, HostStatus.OK]
    assert "KeyError" in results[0].message


def test_concurrency_is_bounded_by_forks() -> None:
    live, peak, lock = [0], [0], threading.Lock()

    def connect(t: Target) -> Shell:
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        time.sleep(0.05)
        with lock:
            live[0] -= 1
        return RecordedShell(H100, name=t.name)

    probe_fleet([target(f"h{i}") for i in range(9)], FleetOptions(forks=3), connect=connect)
    assert peak[0] == 3


def test_a_slow_host_does_not_hold_up_the_others() -> None:
    finished: list[str] = []
    folders = {"slow": H100, "a": H100, "b": H200, "c": H200}
    start = time.monotonic()
    results = probe_fleet([target(n) for n in folders], FleetOptions(forks=4),
                          connect=recorded(folders, delays={"slow": 1.0}),
                          on_result=lambda r: finished.append(r.target.name))
    assert finished[-1] == "slow"  # reported last, though listed first
    assert all(r.ok for r in results)
    assert time.monotonic() - start < 3.0


def test_bundle_keeps_each_hosts_outputs_replayable(tmp_path: Path) -> None:
    targets = [target("gpu[1]:22"), target("b")]
    results = probe_fleet(targets, FleetOptions(bundle_dir=tmp_path),
                          connect=recorded({"gpu[1]:22": H100, "b": H200}))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "gpu_1__22"]
    replay = gather_facts(RecordedShell(tmp_path / "gpu_1__22"))
    live = results[0].facts
    assert live is not None
    assert replay.gpus == live.gpus and replay.driver == live.driver and replay.cuda == live.cuda


def test_bundle_folder_names_are_safe() -> None:
    assert bundle_folder_name("[::1]:2222") == "___1__2222"
    assert bundle_folder_name("../../etc") == "_.._etc"
    assert "/" not in bundle_folder_name("a/b") and bundle_folder_name("..") == "host"


def test_exit_code_precedence_unreachable_over_failed_over_ok() -> None:
    ok = HostResult(target("a"), HostStatus.OK)
    down = HostResult(target("b"), HostStatus.UNREACHABLE)
    timeout = HostResult(target("c"), HostStatus.TIMEOUT)
    assert fleet_exit_code([ok], any_failed=False) == 0
    assert fleet_exit_code([ok], any_failed=True) == 1
    assert fleet_exit_code([ok, down], any_failed=True) == 3
    assert fleet_exit_code([ok, timeout], any_failed=False) == 3


# ---------------------------------------------------------------- Ctrl-C


class _Stuck:
    """A connector whose hosts never answer until `abort()` (as SshConnector closes their sockets)."""

    def __init__(self) -> None:
        self.released = threading.Event()
        self.started = 0
        self.lock = threading.Lock()

    def __call__(self, t: Target) -> Shell:
        with self.lock:
            self.started += 1
        self.released.wait(30)
        raise SshUnreachableError("SSH connection failed: the run was interrupted", where=t.name)

    def abort(self) -> None:
        self.released.set()


def test_ctrl_c_aborts_the_connector_and_starts_no_more_hosts() -> None:
    stuck = _Stuck()
    main = threading.main_thread().ident or 0
    timer = threading.Timer(0.5, signal.pthread_kill, args=(main, signal.SIGINT))
    timer.start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        probe_fleet([target(f"h{i}") for i in range(6)], FleetOptions(forks=2), connect=stuck)
    assert time.monotonic() - start < 5.0  # under load; the bug waited out the whole connect timeout
    assert stuck.released.is_set()
    time.sleep(0.2)  # the two released workers must not pick up the four queued hosts
    assert stuck.started == 2


def test_socket_registry_closes_live_sockets_and_refuses_new_ones() -> None:
    registry = SocketRegistry()
    left, right = socket.socketpair()
    registry.add(left)
    woke: list[bytes] = []
    reader = threading.Thread(target=lambda: woke.append(left.recv(1)))  # blocked as paramiko's banner read is
    reader.start()
    time.sleep(0.1)
    registry.close_all()
    reader.join(2)
    assert woke == [b""] and not reader.is_alive()  # woken by the shutdown, not by the peer
    late = socket.socket()
    with pytest.raises(ConnectionAbortedError):
        registry.add(late)
    assert late.fileno() == -1
    right.close()
