"""Ctrl-C on a fleet run whose hosts accept TCP and never send an SSH banner (a "tarpit").

paramiko waits for the banner for the whole connect timeout in threads that never see
KeyboardInterrupt; svdops must still return at once, with every socket closed and exit 130, and say
that nothing was written to -o.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from svdops.host.fleet import FleetOptions, probe_fleet, ssh_connector
from svdops.host.inventory import Target
from tests.support.paths import REPO

from sshd_fleet import SSHD, running_fleet  # isort: skip  (tests/integration is on sys.path)

HOSTS = 4


@dataclass
class Tarpit:
    """Loopback listeners (one port per host) that accept every connection, never write, and note when
    each one closes."""

    servers: list[socket.socket]
    accepted: list[socket.socket] = field(default_factory=list)
    closed: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def ports(self) -> list[int]:
        return [int(server.getsockname()[1]) for server in self.servers]

    def serve(self, server: socket.socket) -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with self.lock:
                self.accepted.append(conn)
            threading.Thread(target=self._watch, args=(conn,), daemon=True).start()

    def _watch(self, conn: socket.socket) -> None:
        try:
            while conn.recv(4096):  # paramiko sends its own banner first; the close is the b""
                pass
        except OSError:
            pass
        with self.lock:
            self.closed.append(time.monotonic())

    def wait_for(self, what: str, count: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if len(getattr(self, what)) >= count:
                    return True
            time.sleep(0.02)
        return False


@pytest.fixture
def tarpit() -> Iterator[Tarpit]:
    pit = Tarpit([socket.create_server(("127.0.0.1", 0)) for _ in range(HOSTS)])
    for server in pit.servers:
        threading.Thread(target=pit.serve, args=(server,), daemon=True).start()
    yield pit
    for server in pit.servers:
        server.close()
    for conn in pit.accepted:
        conn.close()


def _svdops(args: list[str], home: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    env = {**(env or os.environ), "PYTHONPATH": str(REPO), "HOME": str(home)}
    env.setdefault("SVDOPS_KNOWN_HOSTS", str(home / "kh"))
    return subprocess.Popen(
        [sys.executable, "-m", "svdops", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


@pytest.mark.parametrize("fmt", ["json", "table"])
def test_ctrl_c_while_hosts_hold_back_their_banner_exits_130_at_once(tarpit: Tarpit, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / "fleet.out"
    hosts = [a for port in tarpit.ports for a in ("--host", f"127.0.0.1:{port}")]
    proc = _svdops(["check", *hosts, "--connect-timeout", "30", "--format", fmt, "-o", str(out)], tmp_path)
    try:
        assert tarpit.wait_for("accepted", HOSTS, 20), "svdops never connected"
        time.sleep(1.0)  # every worker is now inside paramiko's banner read
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=15)
        took = time.monotonic() - sent
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert took < 5.0, f"exited {took:.1f} s after Ctrl-C"
    assert tarpit.wait_for("closed", HOSTS, 2), f"{len(tarpit.closed)} of {HOSTS} connections closed"
    assert not out.exists()
    assert f"interrupted before any of the {HOSTS} hosts answered: nothing written to {out}" in stderr
    assert "Traceback" not in stderr


def test_interrupting_probe_fleet_closes_every_socket_before_it_returns(tarpit: Tarpit, tmp_path: Path) -> None:
    """In-process, so the closes are seen while svdops is still alive (a dead process closes all anyway)."""
    options = FleetOptions(connect_timeout_s=30, known_hosts=tmp_path / "kh")
    targets = [Target(f"pit{port}", "127.0.0.1", port=port) for port in tarpit.ports]
    timer = threading.Timer(1.0, lambda: signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT))
    timer.start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        probe_fleet(targets, options, connect=ssh_connector(options))
    assert time.monotonic() - start < 5.0
    assert tarpit.wait_for("closed", HOSTS, 1.0), f"{len(tarpit.closed)} of {HOSTS} connections closed"


@pytest.mark.slow
@pytest.mark.skipif(not SSHD.exists(), reason=f"{SSHD} is absent (apt-get install openssh-server)")
def test_ctrl_c_after_some_hosts_answered_writes_nothing_and_says_where_their_outputs_are(
    tarpit: Tarpit, tmp_path: Path
) -> None:
    """One real sshd host answers, the tarpits never do: -o is not written (a document of some hosts would
    read as the whole fleet), stderr says so and counts the answer, and --bundle keeps that host's outputs."""
    out, bundle = tmp_path / "fleet.json", tmp_path / "bundle"
    with running_fleet(tmp_path / "rig", 1) as rig:
        host = rig.hosts[0]
        pits = [a for port in tarpit.ports[:2] for a in ("--host", f"127.0.0.1:{port}")]
        args = [
            "check",
            "--host",
            f"{rig.user}@127.0.0.1:{host.port}",
            "-i",
            str(rig.client_key),
            *pits,
            "--connect-timeout",
            "30",
            "--format",
            "json",
            "-o",
            str(out),
            "--bundle",
            str(bundle),
        ]
        proc = _svdops(args, rig.home, rig.client_env())
        try:
            assert tarpit.wait_for("accepted", 2, 20), "svdops never connected"
            answered = bundle / f"127.0.0.1_{host.port}" / "nvidia-smi-q.xml"
            deadline = time.monotonic() + 30
            while not answered.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(2.0)  # the last outputs of that host are written, its result is in
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=15)
        finally:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert not out.exists()
    assert (
        f"interrupted after 1 of 3 hosts answered: nothing written to {out}; "
        f"the raw outputs of those that answered are in {bundle}/"
    ) in stderr
    assert answered.stat().st_size > 0
    assert tarpit.wait_for("closed", 2, 2)
