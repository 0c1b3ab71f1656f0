"""Ansible inventories read by real ansible-core (INI, YAML, directories with group_vars/ and host_vars/),
--limit in Ansible's pattern syntax, hostile names, and --host arguments."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from svdops.errors import BadInputError, MissingDependencyError
from svdops.host.inventory import Target, load_inventory, parse_host_arg, select_targets

REPO = Path(__file__).resolve().parents[2]
ANSIBLE = Path(sys.executable).parent / "ansible"
ANSIBLE_INVENTORY = Path(sys.executable).parent / "ansible-inventory"

INI = """\
# a lab: two racks of GPU nodes, a head node, and a login box nobody grouped
login.lab ansible_host=10.0.0.5

[rack_a]
gpu[01:03].lab ansible_user=ops
gpu04.lab:2222

[rack_b]
gpu[05:06].lab ansible_port=2200 ansible_ssh_private_key_file=~/.ssh/rack_b

[head]
head.lab ansible_host=10.0.0.1 ansible_user="admin"  # trailing comment

[gpu:children]
rack_a
rack_b

[gpu:vars]
ansible_user=gpuadmin
ansible_port=22

[rack_b:vars]
ansible_user=rackb

[all:vars]
ansible_user=root
ansible_ssh_private_key_file=/keys/lab
"""

YAML = """\
all:
  vars:
    ansible_user: root
    ansible_ssh_private_key_file: /keys/lab
  hosts:
    login.lab:
      ansible_host: 10.0.0.5
  children:
    gpu:
      vars:
        ansible_user: gpuadmin
        ansible_port: 22
      children:
        rack_a:
          hosts:
            gpu[01:03].lab:
              ansible_user: ops
            gpu04.lab:2222:
        rack_b:
          vars:
            ansible_user: rackb
          hosts:
            gpu[05:06].lab:
              ansible_port: 2200
              ansible_ssh_private_key_file: ~/.ssh/rack_b
    head:
      hosts:
        head.lab:
          ansible_host: 10.0.0.1
          ansible_user: admin
"""

# Ansible's order (`ansible all --list-hosts`): all's own hosts, then each group's as Ansible walks them
ALL_HOSTS = ["login.lab", "head.lab", "gpu01.lab", "gpu02.lab", "gpu03.lab", "gpu04.lab", "gpu05.lab", "gpu06.lab"]


@pytest.fixture(params=["hosts.ini", "hosts.yml"])
def inventory_file(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    path = tmp_path / str(request.param)
    path.write_text(INI if path.suffix == ".ini" else YAML)
    return path


@pytest.fixture
def lab_dir(tmp_path: Path) -> Path:
    """An inventory directory as Ansible users keep one: hosts, group_vars/ (a file and a folder), host_vars/."""
    root = tmp_path / "lab"
    (root / "group_vars" / "gpu").mkdir(parents=True)
    (root / "host_vars").mkdir()
    (root / "hosts").write_text("[gpu]\ngpu[01:04]\n\n[head]\nhead01 ansible_host=10.0.0.1\n")
    (root / "extra.yml").write_text("all:\n  children:\n    spare:\n      hosts:\n        spare01:\n")
    (root / "group_vars" / "all.yml").write_text("ansible_user: root\n")
    (root / "group_vars" / "gpu" / "ssh.yml").write_text("ansible_user: gpuops\nansible_port: 2201\n")
    (root / "host_vars" / "gpu03.yml").write_text("ansible_port: 2299\nansible_host: 10.0.1.3\n")
    return root


def names(targets: list[Target]) -> list[str]:
    return [t.name for t in targets]


# ---------------------------------------------------------------- reading, as Ansible reads


def test_hosts_in_ansibles_order_with_ranges_expanded(inventory_file: Path) -> None:
    assert load_inventory(inventory_file).hosts == ALL_HOSTS


def test_variable_precedence_all_then_parent_then_child_then_host(inventory_file: Path) -> None:
    inv = load_inventory(inventory_file)
    assert inv.target("gpu01.lab").user == "ops"  # host var beats every group
    assert inv.target("gpu04.lab").user == "gpuadmin"  # parent group beats all
    assert inv.target("gpu05.lab").user == "rackb"  # child group beats parent
    assert inv.target("login.lab").user == "root"  # only all's vars
    assert inv.target("head.lab").user == "admin"


def test_connection_vars(inventory_file: Path) -> None:
    inv = load_inventory(inventory_file)
    head = inv.target("head.lab")
    assert (head.name, head.address, head.port) == ("head.lab", "10.0.0.1", None)
    gpu04 = inv.target("gpu04.lab")
    assert (gpu04.address, gpu04.port) == ("gpu04.lab", 2222)  # host:port in the host line beats gpu's 22
    gpu05 = inv.target("gpu05.lab")
    assert gpu05.port == 2200 and isinstance(gpu05.port, int)
    assert gpu05.groups == ("gpu", "rack_b")  # shallow to deep
    assert inv.target("login.lab").groups == ("ungrouped",)


def test_identity_from_inventory_beats_the_command_line_default(inventory_file: Path, tmp_path: Path) -> None:
    inv = load_inventory(inventory_file)
    cli_key = Path("/cli/key")
    assert inv.target("gpu05.lab", default_identity=cli_key).identity == Path("~/.ssh/rack_b").expanduser()
    assert inv.target("gpu01.lab", default_identity=cli_key).identity == Path("/keys/lab")
    plain = tmp_path / "plain"
    plain.write_text("[g]\nh1\n")
    h1 = load_inventory(plain).target("h1", default_identity=cli_key)
    assert h1.identity == cli_key
    assert (h1.port, h1.user) == (None, None)  # left to ~/.ssh/config


def test_host_ranges(tmp_path: Path) -> None:
    path = tmp_path / "ranges"
    path.write_text("[a]\ngpu[01:04]\n[b]\nn[0:6:3]\n[c]\nrack[a:c]-[1:2]\n")
    assert load_inventory(path).hosts == [
        "gpu01", "gpu02", "gpu03", "gpu04", "n0", "n3", "n6",
        "racka-1", "racka-2", "rackb-1", "rackb-2", "rackc-1", "rackc-2",
    ]


def test_a_directory_with_group_vars_and_host_vars(lab_dir: Path) -> None:
    targets = {t.name: t for t in select_targets(inventory=lab_dir)}
    # Ansible reads a directory's files in name order: extra.yml before hosts
    assert list(targets) == ["spare01", "gpu01", "gpu02", "gpu03", "gpu04", "head01"]
    assert (targets["gpu01"].user, targets["gpu01"].port) == ("gpuops", 2201)  # group_vars/gpu/ssh.yml
    assert (targets["gpu03"].address, targets["gpu03"].port) == ("10.0.1.3", 2299)  # host_vars/gpu03.yml
    assert (targets["head01"].user, targets["head01"].port) == ("root", None)  # group_vars/all.yml
    assert targets["spare01"].groups == ("spare",)  # the directory's second file


def test_check_and_provision_resolve_the_same_user_and_port(lab_dir: Path) -> None:
    # provision hands lab_dir to ansible-playbook: what Ansible's own CLI says is what provision connects with
    out = subprocess.run([str(ANSIBLE_INVENTORY), "-i", str(lab_dir), "--host", "gpu03"], capture_output=True,
                         text=True, check=True, env={**os.environ, "LC_ALL": "C.UTF-8"}).stdout
    ansible_view = json.loads(out)
    target = select_targets(inventory=lab_dir, limit="gpu03")[0]
    assert (target.user, target.port, target.address) == (
        ansible_view["ansible_user"], ansible_view["ansible_port"], ansible_view["ansible_host"])
    assert (target.user, target.port) == ("gpuops", 2299)


# ---------------------------------------------------------------- --limit in Ansible's syntax


@pytest.mark.parametrize(("pattern", "expected"), [
    (None, ALL_HOSTS),
    ("all", ALL_HOSTS),
    ("*", ALL_HOSTS),
    ("head", ["head.lab"]),
    ("gpu02.lab", ["gpu02.lab"]),
    ("rack_a:head", ["head.lab", "gpu01.lab", "gpu02.lab", "gpu03.lab", "gpu04.lab"]),
    ("rack_a,head", ["head.lab", "gpu01.lab", "gpu02.lab", "gpu03.lab", "gpu04.lab"]),
    ("gpu:!rack_b", ["gpu01.lab", "gpu02.lab", "gpu03.lab", "gpu04.lab"]),
    ("gpu:&rack_b", ["gpu05.lab", "gpu06.lab"]),
    ("gpu0*", [f"gpu0{i}.lab" for i in range(1, 7)]),
    ("rack_*:!gpu01.lab", ["gpu02.lab", "gpu03.lab", "gpu04.lab", "gpu05.lab", "gpu06.lab"]),
    ("~gpu0[12]", ["gpu01.lab", "gpu02.lab"]),
    ("gpu[1:2]", ["gpu02.lab", "gpu03.lab"]),  # Ansible's subscript: the 2nd and 3rd host of group gpu
    ("ungrouped", ["login.lab"]),
    ("nonesuch", []),
])
def test_limit_patterns(inventory_file: Path, pattern: str | None, expected: list[str]) -> None:
    assert load_inventory(inventory_file).select(pattern) == expected


def test_limit_from_file(inventory_file: Path, tmp_path: Path) -> None:
    retry = tmp_path / "retry"
    retry.write_text("gpu03.lab\nhead.lab\n")
    assert load_inventory(inventory_file).select(f"@{retry}") == ["head.lab", "gpu03.lab"]


def test_limit_selects_what_ansible_selects(inventory_file: Path) -> None:
    pattern = "rack_*:!gpu01.lab:&gpu[1:3]:head"
    out = subprocess.run([str(ANSIBLE), "all", "-i", str(inventory_file), "--limit", pattern, "--list-hosts"],
                         capture_output=True, text=True, check=True, env={**os.environ, "LC_ALL": "C.UTF-8"}).stdout
    listed = [line.strip() for line in out.splitlines()[1:] if line.strip()]
    assert load_inventory(inventory_file).select(pattern) == listed
    assert listed == ["gpu02.lab", "gpu03.lab", "gpu04.lab"]


def test_a_missing_limit_file_is_bad_input(inventory_file: Path, tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="--limit") as err:
        select_targets(inventory=inventory_file, limit=f"@{tmp_path / 'no-such-retry'}")
    assert str(err.value).startswith(f"{inventory_file}: ")


def test_a_limit_that_matches_nothing_names_the_inventory(lab_dir: Path) -> None:
    with pytest.raises(BadInputError, match="matches no host") as err:
        select_targets(inventory=lab_dir, limit="nonesuch")
    assert str(lab_dir) in str(err.value)
    assert err.value.hint is not None and "gpu" in err.value.hint


def test_select_targets_combines_hosts_and_inventory(inventory_file: Path) -> None:
    targets = select_targets(hosts=["extra:2200", "head.lab"], inventory=inventory_file, limit="head:head.lab")
    # --limit applies to --host names too; a name in both is probed once, the --host one first
    assert names(targets) == ["head.lab"]
    assert targets[0].address == "head.lab"
    assert names(select_targets(hosts=["a", "b"], limit="b")) == ["b"]
    assert names(select_targets(hosts=["gpu1", "gpu2", "cpu1"], limit="~^gpu:!gpu2")) == ["gpu1"]
    with pytest.raises(BadInputError, match="none of the --host"):
        select_targets(hosts=["a"], limit="b")


# ---------------------------------------------------------------- hostile input stays data


@pytest.mark.parametrize(("host_line", "message"), [
    ('"$(touch {pwned})": {{}}', "inventory host name"),
    ("gpu01: {{ansible_host: 'gpu01;touch {pwned}'}}", "ansible_host"),
    ("gpu01: {{ansible_host: '-oProxyCommand=touch {pwned}'}}", "ansible_host"),
    ("gpu01: {{ansible_user: '-oProxyCommand=touch {pwned}'}}", "user name"),
    ("gpu01: {{ansible_user: '$(touch {pwned})'}}", "user name"),
    ("gpu01: {{ansible_port: '22 -oProxyCommand=touch {pwned}'}}", "not a number"),
    ("gpu01: {{ansible_port: 70000}}", "out of range"),
])
def test_hostile_inventory_values_are_refused_naming_inventory_and_host(tmp_path: Path, host_line: str,
                                                                        message: str) -> None:
    pwned = tmp_path / "pwned"
    path = tmp_path / "hostile.yml"
    path.write_text("all:\n  hosts:\n    " + host_line.format(pwned=pwned) + "\n")
    with pytest.raises(BadInputError, match=message) as err:
        select_targets(inventory=path)
    assert str(err.value).startswith(f"{path}: host ")
    assert not pwned.exists()


def test_hostile_name_exits_2_with_a_message_and_no_traceback(tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    path = tmp_path / "hostile.yml"
    path.write_text(f'all:\n  hosts:\n    "$(touch {pwned})":\n')
    proc = subprocess.run([sys.executable, "-c", "from svdops.cli.main import main; main()", "check",
                           "--inventory", str(path)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert f"{path}: host $(touch {pwned})" in proc.stderr
    assert "Traceback" not in proc.stderr and "[WARNING]" not in proc.stderr
    assert not pwned.exists()


@pytest.mark.parametrize("var", ["ansible_user", "ansible_host", "ansible_port"])
def test_jinja_in_connection_vars_is_refused(tmp_path: Path, var: str) -> None:
    path = tmp_path / "jinja"
    path.write_text(f"[g]\nh1 {var}=\"{{{{ lookup('env', 'USER') }}}}\"\n")
    with pytest.raises(BadInputError, match="Jinja") as err:
        select_targets(inventory=path)
    assert str(err.value).startswith(f"{path}: host h1")


# ---------------------------------------------------------------- Ansible's errors, as ours


@pytest.mark.parametrize(("name", "text", "message"), [
    ("inv", "[gpu]\nh1 ansible_port\n", "Expected key=value"),
    ("inv.yml", "all:\n  hosts: [\n", "YAML parsing failed"),
    ("inv.yml", "all:\n  host:\n    h1:\n", "lists no hosts (Ansible: Skipping unexpected key (host)"),
    ("inv", "# nothing here\n", "lists no hosts"),
])
def test_bad_inventories_name_the_file_and_print_nothing(tmp_path: Path, capfd: pytest.CaptureFixture[str],
                                                         name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    for _ in range(2):  # Ansible de-duplicates its warnings per process: the second read must still say why
        with pytest.raises(BadInputError) as err:
            select_targets(inventory=path)
        assert message in str(err.value)
        assert str(err.value).startswith(f"{path}: ")
    assert capfd.readouterr() == ("", "")


def test_a_broken_host_vars_file_names_the_host(lab_dir: Path, capfd: pytest.CaptureFixture[str]) -> None:
    (lab_dir / "host_vars" / "gpu02.yml").write_text("ansible_port: [\n")
    assert names(select_targets(inventory=lab_dir, limit="gpu01")) == ["gpu01"]  # only the hosts we reach
    with pytest.raises(BadInputError, match="cannot read the host's variables") as err:
        select_targets(inventory=lab_dir, limit="gpu02")
    assert str(err.value).startswith(f"{lab_dir}: host gpu02")
    assert capfd.readouterr() == ("", "")


def test_missing_inventory_has_a_hint(tmp_path: Path) -> None:
    with pytest.raises(BadInputError) as err:
        load_inventory(tmp_path / "nope.ini")
    assert err.value.hint and "--host" in err.value.hint


def test_missing_ansible_core_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    path.write_text("[g]\nh1\n")
    monkeypatch.setitem(sys.modules, "ansible.inventory.manager", None)
    with pytest.raises(MissingDependencyError) as err:
        select_targets(inventory=path)
    assert err.value.hint is not None and "ansible-core" in err.value.hint
    assert names(select_targets(hosts=["h1"])) == ["h1"]  # --host alone never needs Ansible


# ---------------------------------------------------------------- --host


@pytest.mark.parametrize(("text", "expected"), [
    ("gpu01", Target("gpu01", "gpu01")),
    ("root@gpu01", Target("gpu01", "gpu01", user="root")),
    ("root@gpu01:2222", Target("gpu01:2222", "gpu01", 2222, "root")),
    ("10.0.0.7:22", Target("10.0.0.7:22", "10.0.0.7", 22)),
    ("[fe80::1%eth0]:2222", Target("[fe80::1%eth0]:2222", "fe80::1%eth0", 2222)),
    ("me@[::1]", Target("::1", "::1", user="me")),
    ("::1", Target("::1", "::1")),
    ("ad.user@corp@gpu01", Target("gpu01", "gpu01", user="ad.user@corp")),
])
def test_host_args(text: str, expected: Target) -> None:
    assert parse_host_arg(text) == expected


@pytest.mark.parametrize("text", ["", "gpu01:0", "gpu01:ssh", "@gpu01", "gpu01; touch /tmp/pwned",
                                  "$(reboot)", "[::1", "a b", "-oProxyCommand=x", "$(id)@gpu01",
                                  "-l@gpu01"])
def test_bad_host_args(text: str) -> None:
    with pytest.raises(BadInputError):
        parse_host_arg(text)


def test_target_url() -> None:
    assert Target("x", "::1", 2222, "me").url == "ssh://me@[::1]:2222"
    assert Target("x", "gpu01").url == "ssh://gpu01"


def test_reading_an_inventory_leaves_the_builtin_sys_intern_for_what_comes_next(tmp_path):
    """ansible-core replaces sys.intern on import; torch._dynamo, imported later in the same process
    (`svdops plan` after an inventory read), then died with "substitute_in_graph expects a function
    but got SysInternPatch". Run in a fresh process: this one may have imported ansible already."""
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  hosts:\n    gpu01.lab: {ansible_user: ops, ansible_port: 2222}\n")
    script = (
        "import sys, types\n"
        "from svdops.host.inventory import load_inventory\n"
        f"inv = load_inventory({str(inventory)!r})\n"
        "first = inv.target('gpu01.lab')\n"
        "assert isinstance(sys.intern, types.BuiltinFunctionType), type(sys.intern)\n"
        "again = load_inventory(" + repr(str(inventory)) + ").target('gpu01.lab')\n"
        "assert isinstance(sys.intern, types.BuiltinFunctionType), type(sys.intern)\n"
        "print(first.user, first.port, again.user, again.port)\n"
    )
    env = {**os.environ, "SVDOPS_INVENTORY_CACHE": "off"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ops", "2222", "ops", "2222"]
