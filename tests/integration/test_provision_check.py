"""`svdops provision` for real: ansible-runner, ansible-playbook, SSH to real sshd hosts on loopback.

The hosts (tests/integration/sshd_fleet.py) are this Debian 12 machine behind their own sshd. The
roles support Debian 12 for real, but this is a shared machine: every run here sets
svdops_nvidia_distributions=[Ubuntu], so the NVIDIA roles say why they skip and only record their plan,
which is asserted against the profile (what they choose on Debian 12 is judged in test_roles_vars.py,
and applied for real in the VM suite). Package mirrors are a small HTTP server on loopback, the way an
air-gapped site points the playbooks at its own mirror. Real runs here are limited to roles that
change nothing on a host that is not Ubuntu (preflight).
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from svdops.cli.main import cli

from sshd_fleet import SSHD, SshdFleet, start_fleet  # isort: skip  (tests/integration is on sys.path)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not SSHD.exists() and os.geteuid() != 0,
                       reason=f"{SSHD} is absent and only root may install it (apt-get install openssh-server)"),
]

MINIFORGE = "24.11.3-0"
WATCHED = [Path("/opt/miniforge3"), Path("/var/cache/svdops"), Path("/etc/modprobe.d/blacklist-nouveau.conf"),
           Path("/etc/profile.d/cuda.sh"), Path("/etc/apt/apt.conf.d/51svdops-nvidia"), Path("/scratch")]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshdFleet]:
    f = start_fleet(tmp_path_factory.mktemp("provision-fleet"), 2)
    try:
        for h in f.hosts:
            # the rig's uname answers only the probes' `uname -a`; Ansible's distribution facts need the real one
            (h.folder / "bin" / "uname").unlink()
        yield f
    finally:
        f.stop()


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A loopback HTTP server with the paths preflight and conda fetch: a Miniforge installer with its
    published .sha256 beside it, a pip index and a torch index."""
    root = tmp_path_factory.mktemp("mirror")
    installer = root / "miniforge" / MINIFORGE / f"Miniforge3-{MINIFORGE}-Linux-x86_64.sh"
    installer.parent.mkdir(parents=True)
    installer.write_text("#!/bin/sh\necho 'a stand-in installer: check mode never runs it'\nexit 1\n")
    digest = hashlib.sha256(installer.read_bytes()).hexdigest()
    installer.with_name(installer.name + ".sha256").write_text(f"{digest}  {installer.name}\n")
    for index in ("pypi/pip", "whl/cu130/torch"):
        (root / index).mkdir(parents=True)
        (root / index / "index.html").write_text("<html></html>\n")
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def inventory(fleet: SshdFleet) -> Path:
    return fleet.write_inventory(fleet.root / "hosts.ini",
                                 extra_vars={"ansible_python_interpreter": "/usr/bin/python3"})


@pytest.fixture(scope="module")
def mirror_vars(fleet: SshdFleet, mirror: str) -> Path:
    path = fleet.root / "mirror.yml"
    path.write_text(yaml.safe_dump({
        "svdops_miniforge_base_url": f"{mirror}/miniforge",
        "svdops_miniforge_version": MINIFORGE,
        "svdops_pip_index_url": f"{mirror}/pypi",
        "svdops_torch_index_url": f"{mirror}/whl/cu130",
        # never install headers or drivers on this shared machine, though the roles support Debian 12
        "svdops_nvidia_distributions": ["Ubuntu"],
    }))
    return path


def _state() -> dict[str, bool]:
    return {str(p): p.exists() for p in WATCHED}


def provision(fleet: SshdFleet, runs: Path, *args: str, known_hosts: Path | None = None) -> tuple[int, str, dict]:  # type: ignore[type-arg]
    # host keys are checked (svdops' default) against the rig's known_hosts, so the tests neither need
    # checking off nor write the hosts' keys into the user's own known_hosts
    ssh_args = f"-o ControlMaster=no -o UserKnownHostsFile={known_hosts or fleet.known_hosts}"
    env: dict[str, str | None] = {"SVDOPS_RUNS_DIR": str(runs), "SSH_AUTH_SOCK": None,
                                  "ANSIBLE_HOST_KEY_CHECKING": None, "ANSIBLE_SSH_ARGS": ssh_args}
    # never install headers or drivers on this shared machine, though the roles support Debian 12
    result = CliRunner(env=env).invoke(cli, ["provision", *args, "-e", "svdops_nvidia_distributions=[Ubuntu]"])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    done = sorted(runs.iterdir()) if runs.exists() else []
    summary = json.loads((done[-1] / "result.json").read_text()) if done and (done[-1] / "result.json").exists() else {}
    return result.exit_code, result.output, summary


@pytest.fixture(scope="module")
def whole_play(fleet: SshdFleet, inventory: Path, mirror_vars: Path,
               tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, dict, dict, dict, Path]:  # type: ignore[type-arg]
    runs = tmp_path_factory.mktemp("runs")
    before = _state()
    code, out, summary = provision(fleet, runs, "-p", "h100-sxm-x8-nvlink", "--inventory", str(inventory),
                                   "--check", "-e", f"@{mirror_vars}")
    return code, out, summary, before, _state(), runs


def test_the_whole_play_succeeds_in_check_mode_on_every_host(whole_play: tuple) -> None:  # type: ignore[type-arg]
    code, out, summary, _before, _after, _runs = whole_play
    assert code == 0, out
    assert set(summary["recap"]) == {"gpu01", "gpu02"}
    for host, recap in summary["recap"].items():
        assert recap["failed"] == 0 and recap["unreachable"] == 0, (host, out)
    assert summary["check"] is True
    assert "gpu01  ok=" in out and "RECAP" in out


def test_check_mode_changes_nothing_on_the_hosts(whole_play: tuple) -> None:  # type: ignore[type-arg]
    _code, _out, _summary, before, after, _runs = whole_play
    assert before == after


def test_roles_that_cannot_apply_say_why(whole_play: tuple) -> None:  # type: ignore[type-arg]
    out = whole_play[1]
    assert "skipped: not a distribution NVIDIA's repository serves here (Debian" in out
    # this machine is Debian 12: NVIDIA's pinning scheme (what Ubuntu gets is in test_roles_vars.py)
    assert "would install nvidia-driver-pinning-580 nvidia-open=580.*" in out
    assert "would install cuda-toolkit-13-0" in out
    assert "skipped: no NVSwitch on this host" in out
    assert "skipped: no disks listed for this host" in out
    assert "skipped: check mode" in out  # validate


def test_the_plan_follows_the_profile(whole_play: tuple) -> None:  # type: ignore[type-arg]
    summary = whole_play[2]
    for host in ("gpu01", "gpu02"):
        plan = summary["plan"][host]
        assert plan["nvidia_driver"]["pinning"] == ["nvidia-driver-pinning-580"]
        assert plan["nvidia_driver"]["install"] == ["nvidia-open=580.*"]
        assert plan["nvidia_driver"]["flavor"] == "open" and plan["nvidia_driver"]["scheme"] == "pinning"
        assert set(plan["nvidia_driver"]["hold"]) == {"nvidia-driver-pinning-580", "nvidia-open", "libcuda1",
                                                      "nvidia-kernel-open-dkms"}
        assert plan["cuda_toolkit"]["install"] == ["cuda-toolkit-13-0"]
        assert plan["cuda_toolkit"]["cuda_home"] == "/usr/local/cuda-13.0"
        assert "cudnn" not in plan and "nccl" not in plan  # the profile asks for neither
        assert plan["fabricmanager"]["wanted"] is False
        conda = plan["conda"]
        assert conda["python"] == "3.12" and conda["torch_variant"] == "cu130"
        assert conda["pip"][:2] == ["torch==2.11.*", "diffusers==0.42.*"]
        assert conda["installer"].endswith(f"/miniforge/{MINIFORGE}/Miniforge3-{MINIFORGE}-Linux-x86_64.sh")
        assert conda["checksum"] == "sha256:" + conda["installer"] + ".sha256"
        # the controller's own svdops, built as a wheel in the run folder, never a name from an index
        assert conda["svdops"].startswith("/opt/miniforge3/svdops/svdops-") and conda["svdops"].endswith(".whl")
        assert conda["locked"] is False


def test_runner_artifacts_are_kept_with_the_run(whole_play: tuple) -> None:  # type: ignore[type-arg]
    runs = whole_play[5]
    (run,) = list(runs.iterdir())
    assert run.name.endswith("-h100-sxm-x8-nvlink")
    artifacts = run / "runner" / "artifacts" / "run"
    assert (artifacts / "stdout").exists() and any((artifacts / "job_events").iterdir())
    request = json.loads((run / "request.json").read_text())
    assert request["extra_vars"]["svdops_driver_branch"] == "580"
    assert request["extra_vars"]["svdops_cuda_version"] == "13.0"
    assert "--check" in (artifacts / "command").read_text()


def test_pinned_libraries_are_planned_with_exact_versions_and_holds(
        fleet: SshdFleet, inventory: Path, mirror_vars: Path, tmp_path: Path) -> None:
    profile = tmp_path / "pinned.yaml"
    profile.write_text(
        "description: pinned stack\nextends: h100-sxm-x8-nvlink\n"
        "driver: {version: '570.133.20'}\n"
        "cuda: {toolkit: '12.8', cudnn: '9.8.0', nccl: '2.26.2'}\n"
        "python: {torch_cuda: '12.8'}\n"
    )
    code, out, summary = provision(fleet, tmp_path / "runs", "-p", str(profile), "--inventory", str(inventory),
                                   "--limit", "gpu01", "--check", "-e", f"@{mirror_vars}",
                                   "--tags", "nvidia_driver,cuda_toolkit,cudnn,nccl,fabricmanager")
    assert code == 0, out
    plan = summary["plan"]["gpu01"]
    assert plan["nvidia_driver"]["install"] == ["nvidia-open=570.133.20-*"]
    assert plan["cuda_toolkit"]["install"] == ["cuda-toolkit-12-8"]
    assert plan["cudnn"]["install"] == ["libcudnn9-cuda-12=9.8.0*", "libcudnn9-dev-cuda-12=9.8.0*",
                                        "libcudnn9-headers-cuda-12=9.8.0*"]
    assert plan["cudnn"]["hold"] == ["libcudnn9-cuda-12", "libcudnn9-dev-cuda-12", "libcudnn9-headers-cuda-12"]
    assert plan["nccl"]["install"] == ["libnccl2=2.26.2-*+cuda12.8", "libnccl-dev=2.26.2-*+cuda12.8"]
    assert plan["nccl"]["hold"] == ["libnccl2", "libnccl-dev"]
    assert set(summary["recap"]) == {"gpu01"}  # --limit


def test_forced_fabricmanager_is_locked_to_the_pinned_driver(
        fleet: SshdFleet, inventory: Path, tmp_path: Path) -> None:
    code, out, summary = provision(fleet, tmp_path / "runs", "-p", "h100-sxm-x8-nvlink", "--inventory",
                                   str(inventory), "--limit", "gpu01", "--check", "--tags", "fabricmanager",
                                   "-e", "svdops_fabricmanager=true",
                                   "-e", "svdops_fabricmanager_package=nvidia-fabricmanager-580")
    assert code == 0, out
    fm = summary["plan"]["gpu01"]["fabricmanager"]
    assert fm["wanted"] is True and fm["hold"] == ["nvidia-fabricmanager-580"]


def test_an_impossible_stack_stops_before_ansible(fleet: SshdFleet, inventory: Path, tmp_path: Path) -> None:
    code, out, _ = provision(fleet, tmp_path / "runs", "-p", "h100-sxm-x8-nvlink", "--inventory", str(inventory),
                             "--check", "--driver-branch", "535")
    assert code == 2, out
    assert "provision.driver.cuda" in out and "--driver-branch 580" in out
    assert not (tmp_path / "runs").exists()


def test_an_unreachable_mirror_fails_preflight(fleet: SshdFleet, inventory: Path, mirror_vars: Path,
                                               tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    code, out, summary = provision(fleet, tmp_path / "runs", "-p", "h100-sxm-x8-nvlink", "--inventory",
                                   str(inventory), "--limit", "gpu01", "--check", "--tags", "preflight",
                                   "-e", f"@{mirror_vars}", "-e", f"svdops_pip_index_url=http://127.0.0.1:{dead}/simple")
    assert code == 1, out
    assert f"unreachable from gpu01: http://127.0.0.1:{dead}/simple/pip/" in out
    assert summary["recap"]["gpu01"]["failed"] == 1


def test_an_unreachable_host_exits_3(fleet: SshdFleet, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    code, out, summary = provision(fleet, tmp_path / "runs", "-p", "h100-sxm-x8-nvlink", "--host",
                                   f"root@127.0.0.1:{dead}", "-i", str(fleet.client_key), "--check",
                                   "--tags", "preflight")
    assert code == 3, out
    (recap,) = summary["recap"].values()
    assert recap["unreachable"] == 1


def test_an_unknown_host_key_is_refused(fleet: SshdFleet, tmp_path: Path) -> None:
    h = fleet.hosts[0]
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    code, out, _ = provision(fleet, tmp_path / "runs", "-p", "h100-sxm-x8-nvlink", "--host",
                             f"{fleet.user}@127.0.0.1:{h.port}", "-i", str(fleet.client_key), "--check",
                             "--tags", "preflight", "-e", "svdops_check_mirrors=false", known_hosts=empty)
    assert code == 3, out
    assert "Host key verification failed" in out
    assert empty.read_text() == ""  # not learnt on the way


def test_a_real_run_after_a_check_run_is_not_in_check_mode(fleet: SshdFleet, inventory: Path, mirror_vars: Path,
                                                          tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    common = ["-p", "h100-sxm-x8-nvlink", "--inventory", str(inventory), "--limit", "gpu02", "--tags", "preflight",
              "-e", f"@{mirror_vars}"]
    assert provision(fleet, runs, *common, "--check")[0] == 0
    code, out, summary = provision(fleet, runs, *common)
    assert code == 0, out
    assert summary["check"] is False
    first, second = sorted(runs.iterdir())
    assert "--check" in (first / "runner" / "artifacts" / "run" / "command").read_text()
    assert "--check" not in (second / "runner" / "artifacts" / "run" / "command").read_text()
