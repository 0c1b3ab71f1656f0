"""Ansible inventories (INI and YAML), host ranges, --limit patterns and --host arguments."""

from __future__ import annotations

from pathlib import Path

import pytest

from svdops.errors import BadInputError
from svdops.host.inventory import (
    Target,
    expand_host_range,
    load_inventory,
    parse_host_arg,
    parse_ini_inventory,
    parse_yaml_inventory,
    select_targets,
    split_pattern,
)

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
  hosts:
    login.lab:
      ansible_host: 10.0.0.5
  children:
    gpu:
      vars:
        ansible_user: gpuadmin
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
    head:
      hosts:
        head.lab:
          ansible_host: 10.0.0.1
          ansible_user: admin
"""


@pytest.fixture(params=["ini", "yaml"])
def inv(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    if request.param == "ini":
        return parse_ini_inventory(INI, "hosts.ini")
    return parse_yaml_inventory(YAML, "hosts.yml")


def test_hosts_in_file_order_with_ranges_expanded(inv) -> None:  # type: ignore[no-untyped-def]
    assert list(inv.hosts) == ["login.lab", "gpu01.lab", "gpu02.lab", "gpu03.lab", "gpu04.lab",
                               "gpu05.lab", "gpu06.lab", "head.lab"]


def test_children_make_nested_groups(inv) -> None:  # type: ignore[no-untyped-def]
    assert inv.hosts_of("gpu") == [f"gpu0{i}.lab" for i in range(1, 7)]
    assert inv.hosts_of("rack_b") == ["gpu05.lab", "gpu06.lab"]
    assert inv.hosts_of("ungrouped") == ["login.lab"]
    assert len(inv.hosts_of("all")) == 8


def test_variable_precedence_all_then_parent_then_child_then_host(inv) -> None:  # type: ignore[no-untyped-def]
    assert inv.target("gpu01.lab").user == "ops"  # host var beats every group
    assert inv.target("gpu04.lab").user == "gpuadmin"  # parent group beats all
    assert inv.target("gpu05.lab").user == "rackb"  # child group beats parent
    assert inv.target("login.lab").user == "root"  # only all:vars
    assert inv.target("head.lab").user == "admin"


def test_connection_vars(inv) -> None:  # type: ignore[no-untyped-def]
    head = inv.target("head.lab")
    assert (head.name, head.address) == ("head.lab", "10.0.0.1")
    gpu04 = inv.target("gpu04.lab")
    assert (gpu04.address, gpu04.port) == ("gpu04.lab", 2222)  # host:port in the host line
    gpu05 = inv.target("gpu05.lab")
    assert gpu05.port == 2200 and isinstance(gpu05.port, int)
    assert "rack_b" in gpu05.groups and "gpu" in gpu05.groups


def test_identity_from_inventory_beats_the_command_line_default() -> None:
    inv = parse_ini_inventory(INI)
    assert inv.target("gpu05.lab", default_identity=Path("/cli/key")).identity == Path("~/.ssh/rack_b").expanduser()
    assert inv.target("gpu01.lab", default_identity=Path("/cli/key")).identity == Path("/keys/lab")
    plain = parse_ini_inventory("[g]\nh1\n")
    assert plain.target("h1", default_identity=Path("/cli/key")).identity == Path("/cli/key")
    assert plain.target("h1").port is None and plain.target("h1").user is None  # left to ~/.ssh/config


@pytest.mark.parametrize(("pattern", "expected"), [
    (None, 8),
    ("all", 8),
    ("*", 8),
    ("head", ["head.lab"]),
    ("gpu02.lab", ["gpu02.lab"]),
    ("rack_a:head", ["gpu01.lab", "gpu02.lab", "gpu03.lab", "gpu04.lab", "head.lab"]),
    ("rack_a,head", ["gpu01.lab", "gpu02.lab", "gpu03.lab", "gpu04.lab", "head.lab"]),
    ("gpu:!rack_b", ["gpu01.lab", "gpu02.lab", "gpu03.lab", "gpu04.lab"]),
    ("gpu:&rack_b", ["gpu05.lab", "gpu06.lab"]),
    ("gpu0*", [f"gpu0{i}.lab" for i in range(1, 7)]),
    ("rack_*:!gpu01.lab", ["gpu02.lab", "gpu03.lab", "gpu04.lab", "gpu05.lab", "gpu06.lab"]),
    ("~gpu0[12]", ["gpu01.lab", "gpu02.lab"]),
    ("ungrouped", ["login.lab"]),
    ("nonesuch", []),
])
def test_limit_patterns(inv, pattern: str | None, expected: int | list[str]) -> None:  # type: ignore[no-untyped-def]
    chosen = inv.select(pattern)
    assert (len(chosen) if isinstance(expected, int) else chosen) == expected


def test_limit_from_file(inv, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    names = tmp_path / "retry"
    names.write_text("# failed last time\ngpu03.lab\nhead.lab\n")
    assert inv.select(f"@{names}") == ["gpu03.lab", "head.lab"]


def test_split_pattern_keeps_ranges_and_ipv6_whole() -> None:
    assert split_pattern("a:&b:!c") == ["a", "&b", "!c"]
    assert split_pattern("gpu[01:04]:head") == ["gpu[01:04]", "head"]
    assert split_pattern("fe80::1") == ["fe80::1"]


def test_host_ranges() -> None:
    assert expand_host_range("n[1:3]") == ["n1", "n2", "n3"]
    assert expand_host_range("n[08:10]") == ["n08", "n09", "n10"]
    assert expand_host_range("n[0:6:3]") == ["n0", "n3", "n6"]
    assert expand_host_range("rack[a:c]-[1:2]") == ["racka-1", "racka-2", "rackb-1", "rackb-2", "rackc-1", "rackc-2"]
    with pytest.raises(BadInputError):
        expand_host_range("n[5:1]")


def test_load_picks_the_format_by_content(tmp_path: Path) -> None:
    ini, yml = tmp_path / "hosts", tmp_path / "hosts2"
    ini.write_text(INI)
    yml.write_text(YAML)
    assert list(load_inventory(ini).hosts) == list(load_inventory(yml).hosts)


@pytest.mark.parametrize(("text", "suffix", "message"), [
    ("[gpu:weird]\nh1\n", "", "unknown section"),
    ("[gpu]\nh1 ansible_port\n", "", "key=value"),
    ("[gpu]\nh1 ansible_port=99999\n", "", "out of range"),
    ("[gpu]\nh1 ansible_port=ssh\n", "", "not a number"),
    ("all:\n  hosts: [\n", ".yml", "not valid YAML"),
    ("all:\n  host:\n    h1:\n", ".yml", "unknown key"),
    ("# nothing here\n", "", "no hosts"),
])
def test_bad_inventories_name_the_place(tmp_path: Path, text: str, suffix: str, message: str) -> None:
    path = tmp_path / f"inv{suffix}"
    path.write_text(text)
    with pytest.raises(BadInputError) as err:
        select_targets(inventory=path)
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_missing_inventory_has_a_hint(tmp_path: Path) -> None:
    with pytest.raises(BadInputError) as err:
        load_inventory(tmp_path / "nope.ini")
    assert err.value.hint


def test_jinja_in_connection_vars_is_refused() -> None:
    inv = parse_ini_inventory("[g]\nh1 ansible_user=\"{{ lookup('env', 'USER') }}\"\n")
    with pytest.raises(BadInputError, match="Jinja"):
        inv.target("h1")


@pytest.mark.parametrize(("text", "expected"), [
    ("gpu01", Target("gpu01", "gpu01")),
    ("root@gpu01", Target("gpu01", "gpu01", user="root")),
    ("root@gpu01:2222", Target("gpu01:2222", "gpu01", 2222, "root")),
    ("10.0.0.7:22", Target("10.0.0.7:22", "10.0.0.7", 22)),
    ("[fe80::1%eth0]:2222", Target("[fe80::1%eth0]:2222", "fe80::1%eth0", 2222)),
    ("me@[::1]", Target("::1", "::1", user="me")),
    ("::1", Target("::1", "::1")),
])
def test_host_args(text: str, expected: Target) -> None:
    assert parse_host_arg(text) == expected


@pytest.mark.parametrize("text", ["", "gpu01:0", "gpu01:ssh", "@gpu01", "gpu01; touch /tmp/pwned",
                                  "$(reboot)", "[::1", "a b"])
def test_bad_host_args(text: str) -> None:
    with pytest.raises(BadInputError):
        parse_host_arg(text)


def test_target_url() -> None:
    assert Target("x", "::1", 2222, "me").url == "ssh://me@[::1]:2222"
    assert Target("x", "gpu01").url == "ssh://gpu01"


def test_select_targets_combines_hosts_and_inventory(tmp_path: Path) -> None:
    path = tmp_path / "hosts.ini"
    path.write_text(INI)
    targets = select_targets(hosts=["extra:2200", "head.lab"], inventory=path, limit="head:head.lab")
    # --limit applies to --host names too; a name in both is probed once
    assert [t.name for t in targets] == ["head.lab"]
    assert targets[0].address == "head.lab"  # the --host one came first
    with pytest.raises(BadInputError, match="matches no host"):
        select_targets(inventory=path, limit="nonesuch")
    assert [t.name for t in select_targets(hosts=["a", "b"], limit="b")] == ["b"]
