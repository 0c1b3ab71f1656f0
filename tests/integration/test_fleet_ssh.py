"""Fleet runs against real OpenSSH servers on loopback (see sshd_fleet.py for the rig).

22 sshd instances, each serving a recorded GPU host: 18 answer, one is down (port closed), one
refuses our key, one's nvidia-smi hangs, one has a host key our known_hosts lacks.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from svdops.cli.main import cli
from svdops.host.inventory import Target
from svdops.host.probe.gather import gather_facts
from svdops.host.shell import Command, RecordedShell
from svdops.host.ssh import SshOptions, SshShell

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
COMMAND_TIMEOUT = "2"


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
    for host in data["hosts"]:
        if host["status"] != "ok":
            continue
        recorded = gather_facts(RecordedShell(fleet.host(host["name"]).recorded))  # type: ignore[arg-type]
        facts = host["check"]["facts"]
        assert [g["name"] for g in facts["gpus"]] == [g.name for g in recorded.gpus], host["name"]
        driver = recorded.driver.userspace_version or recorded.driver.kernel_module_version
        remote = facts["driver"]["userspace_version"] or facts["driver"]["kernel_module_version"]
        assert remote == (str(driver) if driver else None), host["name"]
        assert facts["hostname"] == host["name"]  # uname -n, answered by that host
        assert facts["source"] == f"ssh://{fleet.user}@127.0.0.1:{fleet.host(host['name']).port}"


def test_bundle_replays_to_the_same_result(fleet: SshdFleet, fleet_check) -> None:  # type: ignore[no-untyped-def]
    _, data, bundle, _ = fleet_check
    assert sorted(p.name for p in bundle.iterdir()) == sorted(
        h.name for h in fleet.hosts if h.kind in ("ok", "hang"))  # only hosts we got into
    for host in data["hosts"][:8]:
        if host["status"] != "ok":
            continue
        code, out, _ = svdops(fleet, "check", "--from-dir", str(bundle / host["name"]), "--format", "json")
        replay = json.loads(out)
        assert replay["summary"] == host["check"]["summary"], host["name"]
        assert code == (1 if host["check"]["failed"] else 0)


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
