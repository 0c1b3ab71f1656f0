"""Fleet runs against real OpenSSH servers on loopback (see sshd_fleet.py for the rig).

22 sshd instances, each serving a recorded GPU host: 18 answer, one is down (port closed), one
refuses our key, one's nvidia-smi hangs, one has a host key our known_hosts lacks. The 18 serve the
ten recorded fixtures round-robin, so every fixture is gathered over SSH both ways (a round trip per
command, and one script per host) and compared.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from svdops.cli.main import cli
from svdops.host.batch import BatchShell
from svdops.host.facts import HostFacts
from svdops.host.fleet import FleetOptions, HostStatus, probe_host, ssh_connector
from svdops.host.inventory import Target
from svdops.host.probe import commands as probe_commands
from svdops.host.probe.gather import commands_for, gather_facts
from svdops.host.shell import Command, RecordedShell, RecordingShell
from svdops.host.ssh import SSH_FAILURE_RC, SshOptions, SshShell

from sshd_fleet import SSHD, SshdFleet, start_fleet  # isort: skip  (tests/integration is on sys.path)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not SSHD.exists() and os.geteuid() != 0,
                       reason=f"{SSHD} is absent and only root may install it (apt-get install openssh-server)"),
]

COUNT = 22
KINDS = {2: "down", 3: "wrong-key", 4: "hang", 5: "unknown-key"}
STATUS_OF_KIND = {"ok": "ok", "down": "unreachable", "wrong-key": "auth failed", "hang": "timeout",
                  "unknown-key": "host key unknown"}
# a host's ~30 commands start at once in its one script, so on a loaded machine each shares the CPU with
# its siblings for the whole of this timeout: 4 s, not 2, keeps a busy CI runner from timing out healthy hosts
COMMAND_TIMEOUT = "4"
# the rig's verdicts, written out rather than read back from the run under test
OK_HOSTS = ["gpu01", *(f"gpu{i:02d}" for i in range(6, COUNT + 1))]
NOT_CHECKED = {"gpu02": "unreachable", "gpu03": "auth failed", "gpu04": "timeout", "gpu05": "host key unknown"}
# every recorded fixture fails at least one svd-host check (no torch in its Python, an old driver, ...):
# each host checked is a failed check, so a replay of any of them exits 1
FAILED_CHECK_EXIT = 1


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshdFleet]:
    f = start_fleet(tmp_path_factory.mktemp("sshd-fleet"), COUNT, kinds=KINDS)
    try:
        yield f
    finally:
        f.stop()


@pytest.fixture(scope="module")
def inventory(fleet: SshdFleet) -> Path:
    return fleet.write_inventory(fleet.root / "hosts.ini")


def svdops(fleet: SshdFleet, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    full: dict[str, str | None] = {**fleet.client_env(), **(env or {})}
    full.setdefault("SSH_AUTH_SOCK", None)  # CliRunner only overrides: None unsets a caller's agent
    result = CliRunner(env=full).invoke(cli, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def shell(fleet: SshdFleet, name: str, **options: object) -> SshShell:
    h = fleet.host(name)
    target = Target(name, "127.0.0.1", h.port, fleet.user, fleet.client_key)
    return SshShell(target, SshOptions(known_hosts=fleet.known_hosts, **options))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def fleet_check(fleet: SshdFleet, inventory: Path) -> tuple[int, dict, Path, float]:  # type: ignore[type-arg]
    bundle = fleet.root / "bundle"
    start = time.monotonic()
    code, out, _err = svdops(fleet, "check", "--inventory", str(inventory), "--format", "json",
                            "--command-timeout", COMMAND_TIMEOUT, "--connect-timeout", "5", "--bundle", str(bundle))
    elapsed = time.monotonic() - start
    return code, json.loads(out), bundle, elapsed


def test_every_host_gets_its_status_and_exit_is_3(fleet: SshdFleet, fleet_check) -> None:  # type: ignore[no-untyped-def]
    code, data, _, elapsed = fleet_check
    assert code == 3  # some hosts could not be checked, though the others also failed checks
    statuses = {h["name"]: h["status"] for h in data["hosts"]}
    assert statuses == {h.name: STATUS_OF_KIND[h.kind] for h in fleet.hosts}
    assert data["summary"]["checked"] == COUNT - len(KINDS)
    # the hung host costs one command timeout, in parallel with the rest, not one per command
    assert elapsed < 15, elapsed
    by_name = {h["name"]: h for h in data["hosts"]}
    assert "refused" in by_name["gpu02"]["message"]
    assert "authentication failed" in by_name["gpu03"]["message"]
    assert "nvidia-smi" in by_name["gpu04"]["message"] and "timed out" in by_name["gpu04"]["message"]
    assert "SHA256:" in by_name["gpu05"]["message"] and "--accept-new-host-keys" in by_name["gpu05"]["hint"]


def test_answering_hosts_report_their_recorded_gpus_and_driver(fleet: SshdFleet, fleet_check) -> None:  # type: ignore[no-untyped-def]
    _, data, _, _ = fleet_check
    by_name = {h["name"]: h for h in data["hosts"]}
    assert sorted(n for n, h in by_name.items() if h["status"] == "ok") == OK_HOSTS
    assert {n: h["status"] for n, h in by_name.items() if h["status"] != "ok"} == NOT_CHECKED
    for name in OK_HOSTS:
        host = by_name[name]
        recorded = gather_facts(RecordedShell(fleet.host(name).recorded))  # type: ignore[arg-type]
        facts = host["check"]["facts"]
        assert [g["name"] for g in facts["gpus"]] == [g.name for g in recorded.gpus], name
        driver = recorded.driver.userspace_version or recorded.driver.kernel_module_version
        remote = facts["driver"]["userspace_version"] or facts["driver"]["kernel_module_version"]
        assert remote == (str(driver) if driver else None), name
        assert facts["hostname"] == name  # uname -n, answered by that host
        assert facts["source"] == f"ssh://{fleet.user}@127.0.0.1:{fleet.host(name).port}"
        assert host["check"]["failed"] is True, name
    for name in NOT_CHECKED:
        assert by_name[name]["check"] is None


def test_bundle_replays_to_the_same_result(fleet: SshdFleet, fleet_check) -> None:  # type: ignore[no-untyped-def]
    _, data, bundle, _ = fleet_check
    assert sorted(p.name for p in bundle.iterdir()) == sorted([*OK_HOSTS, "gpu04"])  # only hosts we got into
    by_name = {h["name"]: h for h in data["hosts"]}
    for name in OK_HOSTS[:6]:  # six hosts, six different fixtures
        code, out, _ = svdops(fleet, "check", "--from-dir", str(bundle / name), "--format", "json")
        replay = json.loads(out)
        assert replay["summary"] == by_name[name]["check"]["summary"], name
        assert code == FAILED_CHECK_EXIT, name


def test_known_hosts_untouched_without_opt_in(fleet: SshdFleet, fleet_check) -> None:  # type: ignore[no-untyped-def]
    assert fleet.host("gpu05").known_hosts_name not in fleet.known_hosts.read_text()


def test_table_output_has_detail_and_summary(fleet: SshdFleet, inventory: Path) -> None:
    code, out, _ = svdops(fleet, "check", "--inventory", str(inventory), "--limit", "gpu:!hang:!gpu1*:!gpu2*")
    assert code == 3
    assert "Fleet check against profile 'svd-host'" in out
    assert "How to fix" in out  # per-host detail (the single-host findings table)
    for word in ("unreachable", "auth failed", "host key unknown", "GPUs", "driver"):
        assert word in out
    assert "8 hosts: 5 checked" in out.replace("\n", " ")
    assert "gpu04" not in out  # --limit left out the hung host


def test_exit_1_when_every_host_answered_and_one_failed(fleet: SshdFleet, inventory: Path) -> None:
    code, _out, err = svdops(fleet, "check", "--inventory", str(inventory), "--limit", "ok:&gpu0*",
                            "--format", "junit", "-o", str(fleet.root / "junit.xml"))
    assert code == 1, err
    root = ET.parse(fleet.root / "junit.xml").getroot()
    assert len(root.findall("testsuite")) == 5 and root.get("errors") == "0"
    assert "written to" in err


def test_junit_marks_unreachable_hosts_as_errors(fleet: SshdFleet, inventory: Path) -> None:
    code, out, _ = svdops(fleet, "check", "--inventory", str(inventory), "--limit", "down:wrong_key:gpu01",
                          "--format", "junit")
    assert code == 3
    root = ET.fromstring(out.split("\n", 1)[1])
    assert root.get("errors") == "2" and len(root.findall("testsuite")) == 3


def test_yaml_inventory_and_facts_json(fleet: SshdFleet) -> None:
    inv = fleet.write_inventory(fleet.root / "hosts.yml", fmt="yaml")
    code, out, _ = svdops(fleet, "facts", "--inventory", str(inv), "--limit", "ok:&~gpu0[6-9]", "--json")
    assert code == 0
    data = json.loads(out)
    assert [h["name"] for h in data["hosts"]] == ["gpu06", "gpu07", "gpu08", "gpu09"]
    assert all(h["facts"]["schema"] == "svdops.facts/1" for h in data["hosts"])


def test_accept_new_host_keys_records_the_key_then_trusts_it(fleet: SshdFleet, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    shutil.copy(fleet.known_hosts, known)
    h = fleet.host("gpu05")
    args = ("facts", "--host", f"{fleet.user}@127.0.0.1:{h.port}", "-i", str(fleet.client_key), "--json")
    env = {"SVDOPS_KNOWN_HOSTS": str(known)}
    assert svdops(fleet, *args, env=env)[0] == 3  # refused by default
    code, out, _ = svdops(fleet, *args, "--accept-new-host-keys", env=env)
    assert code == 0 and json.loads(out)["hosts"][0]["status"] == "ok"
    pub = (h.folder / "ssh_host_ed25519_key.pub").read_text().split()[1]
    assert f"{h.known_hosts_name} ssh-ed25519 {pub}" in known.read_text()
    assert svdops(fleet, *args, env=env)[0] == 0  # known now: no flag needed


def test_a_changed_host_key_is_always_refused(fleet: SshdFleet, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    h, other = fleet.host("gpu01"), fleet.host("gpu06")
    other_key = (other.folder / "ssh_host_ed25519_key.pub").read_text().split()
    known.write_text(f"{h.known_hosts_name} {other_key[0]} {other_key[1]}\n")
    before = known.read_text()
    code, out, _ = svdops(fleet, "facts", "--host", f"{fleet.user}@127.0.0.1:{h.port}", "-i", str(fleet.client_key),
                          "--json", "--accept-new-host-keys", env={"SVDOPS_KNOWN_HOSTS": str(known)})
    assert code == 3
    host = json.loads(out)["hosts"][0]
    assert host["status"] == "host key changed" and "ssh-keygen" in host["hint"]
    assert known.read_text() == before


def test_no_argument_reaches_a_remote_shell_unquoted(fleet: SshdFleet, tmp_path: Path) -> None:
    nasty = [f"; touch {tmp_path}/pwned", f"$(touch {tmp_path}/pwned2)", f"`touch {tmp_path}/pwned3`", "a 'b' \"c\""]
    with shell(fleet, "gpu01") as sh:
        result = sh.run(Command("printf.txt", ("printf", "%s\\n", *nasty)))
        assert result.ok and result.stdout.splitlines() == nasty
        env = sh.run(Command("env.txt", ("sh", "-c", 'echo "$LC_ALL"')))
        assert env.stdout == "C\n"  # set through `env` on the command line, not SSH SetEnv
    # --python is a program name on the remote host: quoted, so it is merely not found
    code, out, _ = svdops(fleet, "facts", "--host", f"{fleet.user}@127.0.0.1:{fleet.host('gpu01').port}",
                          "-i", str(fleet.client_key), "--json", "--python", f"python3; touch {tmp_path}/pwned4")
    assert code == 0
    assert json.loads(out)["hosts"][0]["facts"]["python"]["python_version"] is None
    assert not list(tmp_path.iterdir())
    # a host name is never run through a shell; a malformed one is bad input
    assert svdops(fleet, "facts", "--host", f"127.0.0.1; touch {tmp_path}/pwned5")[0] == 2
    assert not list(tmp_path.iterdir())


def test_missing_program_is_missing_and_hung_one_times_out(fleet: SshdFleet) -> None:
    with shell(fleet, "gpu01") as sh:
        missing = sh.run(Command("x.txt", ("svdops-no-such-program", "--version")))
        assert missing.missing and missing.rc == 127
    with shell(fleet, "gpu04", command_timeout_s=1.0) as sh:
        start = time.monotonic()
        hung = sh.run(Command("nvidia-smi.txt", ("nvidia-smi",)))
        assert hung.timed_out and not hung.ok and time.monotonic() - start < 3
        after = sh.run(Command("uname.txt", ("uname", "-n")))  # the connection is still usable
        assert after.ok and after.stdout == "gpu04\n"


def test_a_silent_port_is_unreachable_within_the_connect_timeout(fleet: SshdFleet) -> None:
    # a listening socket nobody serves: TCP connects, the SSH banner never comes
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        port = silent.getsockname()[1]
        start = time.monotonic()
        code, out, _ = svdops(fleet, "facts", "--host", f"127.0.0.1:{port}", "--json", "--connect-timeout", "1")
        elapsed = time.monotonic() - start
    assert code == 3 and json.loads(out)["hosts"][0]["status"] == "unreachable"
    assert elapsed < 4, elapsed


def test_ssh_config_alias_and_agent(fleet: SshdFleet, tmp_path: Path) -> None:
    """~/.ssh/config resolves the name (HostName, Port, User); the agent supplies the key (no -i)."""
    h = fleet.host("gpu07")
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text(
        f"Host rack7-node\n  HostName 127.0.0.1\n  Port {h.port}\n  User {fleet.user}\n")
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        subprocess.run(["ssh-add", "-q", str(fleet.client_key)], env={**os.environ, "SSH_AUTH_SOCK": str(sock)},
                       check=True, capture_output=True)
        code, out, err = svdops(fleet, "facts", "--host", "rack7-node", "--json",
                                env={"HOME": str(home), "SSH_AUTH_SOCK": str(sock)})
        assert code == 0, err
        host = json.loads(out)["hosts"][0]
        assert host["status"] == "ok" and host["facts"]["hostname"] == "gpu07"
        # without the agent there is no key to offer: auth fails, reported per host
        code, out, _ = svdops(fleet, "facts", "--host", "rack7-node", "--json", env={"HOME": str(home)})
        assert code == 3, json.loads(out)["hosts"][0]
        assert json.loads(out)["hosts"][0]["status"] == "auth failed", json.loads(out)["hosts"][0]["message"]
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=5)


# ---------------------------------------------------------------- one round trip per host


def _facts(facts: HostFacts) -> dict[str, Any]:
    data = dataclasses.asdict(facts)
    data.pop("collected_at")  # the only field that may differ between two gathers of one host
    return data


def _bundle(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_one_script_per_host_gives_the_same_facts_and_bundle_as_a_round_trip_per_command(
        fleet: SshdFleet, tmp_path: Path) -> None:
    """Every recorded fixture, served by sshd, gathered both ways: equal facts, byte-equal bundles, except
    that the script skips a fallback whose primary answered (its file is then absent, and only then)."""

    fallbacks_seen: set[tuple[str, bool]] = set()

    def both_ways(name: str) -> tuple[str, dict[str, Any], dict[str, Any], int, int]:
        with shell(fleet, name) as each:
            per_command = gather_facts(RecordingShell(each, tmp_path / "each" / name))
        with shell(fleet, name) as one:
            batched_shell = BatchShell(one, commands_for(one), fallbacks=probe_commands.FALLBACKS)
            batched = gather_facts(RecordingShell(batched_shell, tmp_path / "batch" / name))
        each_bundle, batch_bundle = _bundle(tmp_path / "each" / name), _bundle(tmp_path / "batch" / name)
        for fallback, primary in probe_commands.FALLBACKS.items():
            answered = primary in each_bundle and f"{primary}.rc" not in each_bundle and each_bundle[primary].strip()
            assert (fallback in batch_bundle) == (not answered), (name, fallback)
            fallbacks_seen.add((fallback, bool(answered)))
            if answered:
                for suffix in ("", ".rc", ".err"):
                    each_bundle.pop(fallback + suffix, None)
        assert each_bundle == batch_bundle, name
        return name, _facts(per_command), _facts(batched), each.sessions_opened, one.sessions_opened

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(both_ways, OK_HOSTS))
    served = {fleet.host(name).recorded for name in OK_HOSTS}
    assert len(served) == 10  # all ten fixtures
    for name, per_command, batched, each_sessions, one_sessions in results:
        assert batched == per_command, name
        assert (each_sessions, one_sessions) == (len(probe_commands.ALL), 1), name  # one channel, one round trip
    # nvcc is on PATH on some fixtures (its fallback skipped) and not on others (run); every fixture has
    # ldconfig on PATH (a fallback run is covered in tests/unit/test_batch.py)
    nvcc_default, ldconfig_sbin = probe_commands.NVCC_VERSION_DEFAULT_PATH.key, probe_commands.LDCONFIG_SBIN.key
    assert fallbacks_seen == {(nvcc_default, True), (nvcc_default, False), (ldconfig_sbin, True)}, fallbacks_seen
    with_gpus = [name for name, per_command, _, _, _ in results if per_command["gpus"]]
    assert with_gpus == [n for n in OK_HOSTS if gather_facts(RecordedShell(fleet.host(n).recorded)).gpus]  # type: ignore[arg-type]
    assert len(with_gpus) == 12  # GPUs were compared too (no-gpu, nouveau and such hosts have none)


def test_a_hung_command_in_the_script_times_out_once_and_the_rest_answer(fleet: SshdFleet) -> None:
    with shell(fleet, "gpu04", command_timeout_s=1.0) as sh:
        batched = BatchShell(sh, commands_for(sh))
        start = time.monotonic()
        answers = {c.key: batched.run(c) for c in commands_for(sh)}
        elapsed = time.monotonic() - start
        assert sh.sessions_opened == 1 and batched.fallback is None
    hung = sorted(k for k, r in answers.items() if r.timed_out)
    assert hung == sorted(c.key for c in commands_for(sh) if c.argv[0] == "nvidia-smi")
    assert all("timed out after 1 s" in answers[k].reason for k in hung)
    assert answers["hostname.txt"].stdout == "gpu04\n" and answers["meminfo.txt"].ok
    assert elapsed < 1 + 2 + 3, elapsed  # once, not once per nvidia-smi call


def test_text_that_is_binary_or_frame_like_crosses_ssh_unchanged(fleet: SshdFleet, tmp_path: Path) -> None:
    raw = b"\xff\xfe\x00 P F 0 0 9 9 0\n\xc3\x28"
    nasty = [f"; touch {tmp_path}/pwned", f"$(touch {tmp_path}/pwned2)", "a 'b' \"c\"", "\n"]
    commands = (Command("bin.txt", ("printf", "".join(f"\\{b:03o}" for b in raw))),
                Command("args.txt", ("printf", "%s|", *nasty)),
                Command("err.txt", ("sh", "-c", "echo to-stderr >&2; exit 7")))
    with shell(fleet, "gpu06") as sh:
        batched = BatchShell(sh, commands)
        answers = {c.key: batched.run(c) for c in commands}
        assert sh.sessions_opened == 1
    assert answers["bin.txt"].stdout == raw.decode("utf-8", errors="replace")
    assert answers["args.txt"].stdout == "|".join(nasty) + "|"
    assert (answers["err.txt"].rc, answers["err.txt"].stderr) == (7, "to-stderr\n")
    assert not list(tmp_path.iterdir())


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def test_a_host_that_drops_mid_script_is_lost_and_keeps_what_came(fleet: SshdFleet) -> None:
    h = fleet.host("gpu22")
    assert h.process is not None
    commands = (Command("fast.txt", ("uname", "-n")), Command("slow.txt", ("sh", "-c", "sleep 5; echo late")))
    with shell(fleet, "gpu22") as sh:
        batched = BatchShell(sh, commands)
        before = set(_descendants(h.process.pid))  # nothing of ours yet: the listener has no session
        killer = threading.Timer(1.5, lambda: [os.kill(pid, signal.SIGKILL)
                                              for pid in _descendants(h.process.pid)])  # type: ignore[union-attr]
        killer.start()
        try:
            answers = {c.key: batched.run(c) for c in commands}
        finally:
            killer.join()
        assert before  # the connection's sshd processes existed: they are what the timer killed
        assert sh.lost is not None
    assert answers["fast.txt"].stdout == "gpu22\n"  # its frame had come before the drop
    assert answers["slow.txt"].rc == SSH_FAILURE_RC and not answers["slow.txt"].ok
    assert h.process.poll() is None  # the listener lives on for the other tests


def test_the_fleet_probes_a_host_in_one_round_trip(fleet: SshdFleet, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(fleet.home))  # no ~/.ssh/config of whoever runs the tests
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    h = fleet.host("gpu08")
    options = FleetOptions(known_hosts=fleet.known_hosts, command_timeout_s=5)
    opened: list[Any] = []
    result = probe_host(Target("gpu08", "127.0.0.1", h.port, fleet.user, fleet.client_key), options,
                        ssh_connector(options), opened=opened.append)
    assert result.status is HostStatus.OK and result.facts is not None and result.facts.hostname == "gpu08"
    assert [shell.sessions_opened for shell in opened] == [1]
