"""What `svdops provision` leaves behind and what the playbooks refuse, with real Ansible.

One real `svdops provision --check --tags preflight` against this machine over a local connection
(ansible-runner, ansible-playbook): a become password given with -e and a token in the caller's
environment must leave no copy anywhere under the run folder, nor in what svdops prints or records,
and the folder must be private to its owner.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from svdops.cli.main import cli

pytestmark = [pytest.mark.slow]

BECOME = "S3cr3t-BEC0ME"
TOKEN = "tok-XYZ123"


@pytest.fixture(scope="module")
def secret_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, Path]:
    root = tmp_path_factory.mktemp("secrets")
    inventory = root / "hosts.ini"
    inventory.write_text("[svdops]\nthis-machine ansible_connection=local "
                         f"ansible_python_interpreter={sys.executable}\n")
    runs = root / "runs"
    env = {"SVDOPS_RUNS_DIR": str(runs), "MY_API_TOKEN": TOKEN}
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    result = CliRunner(env=env).invoke(cli, [
        "provision", "-p", "h100-sxm-x8-nvlink", "--inventory", str(inventory), "--check", "--tags", "preflight",
        "-e", "svdops_check_mirrors=false", "-e", f"ansible_become_password={BECOME}",
        "-e", "svdops_free_space_paths=['/']", "-e", "svdops_min_free_gib=0",
        # this shared Debian 12 machine: the NVIDIA parts (headers included) stay off it
        "-e", "svdops_nvidia_distributions=[Ubuntu]",
    ])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    # ansible-runner swaps in handlers that only set its cancel flag: svdops puts the caller's back, or a
    # later Ctrl-C in this process would interrupt nothing
    assert {sig: signal.getsignal(sig) for sig in before} == before
    (run,) = list(runs.iterdir())
    return result.exit_code, result.output, run


def test_the_run_itself_works(secret_run: tuple[int, str, Path]) -> None:
    code, out, run = secret_run
    assert code == 0, out
    assert (run / "runner" / "artifacts" / "run" / "stdout").stat().st_size > 0
    assert any((run / "runner" / "artifacts" / "run" / "job_events").iterdir())
    request = json.loads((run / "request.json").read_text())
    assert request["extra_vars"]["ansible_become_password"] == "<redacted>"
    assert request["extra_vars"]["svdops_check_mirrors"] is False  # not a secret: kept as it was


def test_no_copy_of_a_secret_is_left_anywhere(secret_run: tuple[int, str, Path]) -> None:
    _code, out, run = secret_run
    found = []
    for path in sorted(run.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path.relative_to(run)}: {s}" for s in (BECOME, TOKEN) if s.encode() in data]
    assert found == []
    assert BECOME not in out and TOKEN not in out
    command = json.loads((run / "runner" / "artifacts" / "run" / "command").read_text())
    assert "MY_API_TOKEN" not in command["env"]  # never given to ansible-playbook
    assert command["env"]["LANG"] == "C.UTF-8" and command["env"]["ANSIBLE_HOST_KEY_CHECKING"] == "True"
    # nothing but the secrets was scrubbed: the facts Ansible cached still say what they said
    facts = next((run / "runner" / "artifacts" / "run" / "fact_cache").iterdir()).read_text()
    assert "<redacted>" not in facts


def test_the_run_folder_is_private(secret_run: tuple[int, str, Path]) -> None:
    _code, _out, run = secret_run
    loose = []
    for path in [run, *run.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.is_symlink():
            continue
        if mode & 0o077:
            loose.append(f"{path.relative_to(run.parent)}: {oct(mode)}")
    assert loose == []
    assert stat.S_IMODE(run.stat().st_mode) == 0o700
    assert stat.S_IMODE((run / "request.json").stat().st_mode) == 0o600
    assert os.environ.get("MY_API_TOKEN") != TOKEN  # the test's env did not leak into this process


# --- the playbooks' own guards, judged by real Ansible (one ansible-playbook run through ansible-runner) --

CONTROLLER_ID = Path("/etc/machine-id").read_text().strip() if Path("/etc/machine-id").exists() else ""
DISK = "/dev/disk/by-id/nvme-QEMU_NVMe_Ctrl_svd0001"

# host -> (its inventory vars, whether nvidia_driver's guard must call it the machine running the play)
GUARD_HOSTS: dict[str, tuple[dict[str, object], bool]] = {
    "conn-local": ({"ansible_connection": "local"}, True),
    "conn-builtin": ({"ansible_connection": "ansible.builtin.local"}, True),
    "conn-legacy": ({"ansible_connection": "ansible.legacy.local"}, True),
    "loop-v4": ({"ansible_host": "127.0.0.1"}, True),
    "loop-v4-other": ({"ansible_host": "127.0.1.1"}, True),
    "loop-v6": ({"ansible_host": "::1"}, True),
    "loop-v6-brackets": ({"ansible_host": "[::1]"}, True),
    "localhost": ({}, True),
    "via-name": ({"ansible_host": "localhost"}, True),
    "own-hostname": ({"ansible_host": os.uname().nodename}, True),
    "same-machine-id": ({"ansible_host": "192.0.2.10", "nvidia_driver_target_machine_id": CONTROLLER_ID}, True),
    "remote": ({"ansible_host": "192.0.2.10"}, False),
    "remote-named": ({"ansible_host": "gpu07.example.org"}, False),
    "remote-other-id": ({"ansible_host": "192.0.2.11", "nvidia_driver_target_machine_id": "0" * 32}, False),
}
# host -> (its storage vars, whether the storage role's checks must refuse it)
STORAGE_HOSTS: dict[str, tuple[dict[str, object], bool]] = {
    "st-defaults": ({"svdops_storage_scratch_devices": [DISK]}, False),
    "st-custom": ({"svdops_storage_scratch_devices": [DISK], "svdops_storage_scratch_name": "md0",
                   "svdops_storage_scratch_mount": "/mnt/scratch", "svdops_storage_wipe": [DISK]}, False),
    "st-wipe-by-host": ({"svdops_storage_scratch_devices": [DISK],
                         "svdops_storage_wipe_by_host": {"st-wipe-by-host": [DISK]}}, False),
    "st-name-path": ({"svdops_storage_scratch_devices": [DISK], "svdops_storage_scratch_name": "/dev/md/x"}, True),
    "st-name-shell": ({"svdops_storage_scratch_devices": [DISK], "svdops_storage_scratch_name": "x;reboot"}, True),
    "st-mount-root": ({"svdops_storage_scratch_devices": [DISK], "svdops_storage_scratch_mount": "/"}, True),
    "st-mount-boot": ({"svdops_storage_scratch_devices": [DISK], "svdops_storage_scratch_mount": "/boot"}, True),
    "st-mount-usr": ({"svdops_storage_scratch_devices": [DISK], "svdops_storage_scratch_mount": "/usr/local"}, True),
    "st-mount-dots": ({"svdops_storage_scratch_devices": [DISK], "svdops_storage_scratch_mount": "/mnt/../etc"},
                      True),
    "st-mount-space": ({"svdops_storage_scratch_devices": [DISK], "svdops_storage_scratch_mount": "/mnt/a b"}, True),
    "st-mount-newline": ({"svdops_storage_scratch_devices": [DISK], "svdops_storage_scratch_mount": "/scratch\n"},
                         True),
    "st-same-mount": ({"svdops_storage_scratch_devices": [DISK], "svdops_storage_data_devices": [DISK + "2"],
                       "svdops_storage_data_mount": "/scratch"}, True),
    "st-wipe-kernel": ({"svdops_storage_scratch_devices": [DISK], "svdops_storage_wipe": ["/dev/nvme0n1"]}, True),
    "st-wipe-bare": ({"svdops_storage_scratch_devices": [DISK], "svdops_storage_wipe": ["vdz"]}, True),
}
PLAYBOOK = """\
- name: The reboot guard
  hosts: guard
  gather_facts: false
  tasks:
    - name: Judge the host
      ansible.builtin.include_role: {name: nvidia_driver, tasks_from: controller}
    - name: Compare
      ansible.builtin.assert:
        that: nvidia_driver_target_is_controller | bool == expected | bool
        fail_msg: "guard said {{ nvidia_driver_target_is_controller }}, expected {{ expected }}"

- name: The storage role's checks
  hosts: storage
  gather_facts: false
  roles: [svdops]
  tasks:
    - name: Check the storage variables
      block:
        - name: Run the role's checks
          ansible.builtin.include_role: {name: storage, tasks_from: inputs}
        - name: Accepted
          ansible.builtin.set_fact: {refused: false}
      rescue:
        - name: Refused
          ansible.builtin.set_fact: {refused: true, why: "{{ ansible_failed_result.msg | default('') }}"}
    - name: Compare
      ansible.builtin.assert:
        that: refused == expected
        fail_msg: "refused={{ refused }}, expected {{ expected }}: {{ why | default('') }}"
"""


@pytest.fixture(scope="module")
def guards(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """host -> '' when Ansible judged it as expected, else what it said."""
    import ansible_runner
    import yaml

    root = tmp_path_factory.mktemp("guards")
    groups = {"guard": GUARD_HOSTS, "storage": STORAGE_HOSTS}
    inventory = {"all": {"vars": {"ansible_python_interpreter": sys.executable}, "children": {
        group: {"hosts": {h: {**v, "expected": e} for h, (v, e) in hosts.items()}} for group, hosts in groups.items()}}}
    for host in STORAGE_HOSTS:  # the checks need no connection; local keeps an accident harmless
        inventory["all"]["children"]["storage"]["hosts"][host]["ansible_connection"] = "local"  # type: ignore[index]
    (root / "hosts.yml").write_text(yaml.safe_dump(inventory))
    (root / "play.yml").write_text(PLAYBOOK)
    (root / "runner").mkdir()
    roles = Path(__file__).resolve().parents[2] / "playbooks" / "roles"
    result = ansible_runner.run(private_data_dir=str(root / "runner"), playbook=str(root / "play.yml"),
                                inventory=str(root / "hosts.yml"), quiet=True, suppress_env_files=True,
                                envvars={"ANSIBLE_ROLES_PATH": str(roles),
                                         "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                                         "LC_ALL": "C.UTF-8"})
    out = {h: "not judged" for h in (*GUARD_HOSTS, *STORAGE_HOSTS)}
    for event in result.events:
        data = event.get("event_data") or {}
        if data.get("task") != "Compare":
            continue
        if event["event"] == "runner_on_ok":
            out[data["host"]] = ""
        elif event["event"] == "runner_on_failed":
            out[data["host"]] = str((data.get("res") or {}).get("msg"))
    return out


@pytest.mark.parametrize("host", list(GUARD_HOSTS))
def test_the_reboot_guard_knows_the_machine_running_the_play(guards: dict[str, str], host: str) -> None:
    assert guards[host] == ""


def test_the_reboot_task_obeys_the_guard() -> None:
    tasks = {t["name"]: t for t in yaml_load(Path(__file__).resolve().parents[2] / "playbooks" / "roles" /
                                             "nvidia_driver" / "tasks" / "reboot.yml")}
    reboot = tasks["Reboot and wait for the host"]
    assert "ansible.builtin.reboot" in reboot
    assert "not (nvidia_driver_target_is_controller | default(true) | bool)" in reboot["when"]
    assert not any("ansible_connection" in str(w) for w in reboot["when"])  # the one spelling it knew
    assert tasks["Work out whether the host is the machine running the play"]["ansible.builtin.include_tasks"] == \
        "controller.yml"


@pytest.mark.parametrize("host", list(STORAGE_HOSTS))
def test_the_storage_role_checks_names_mounts_and_wipes(guards: dict[str, str], host: str) -> None:
    assert guards[host] == ""


def yaml_load(path: Path) -> list[dict[str, object]]:
    import yaml

    return yaml.safe_load(path.read_text())  # type: ignore[no-any-return]
