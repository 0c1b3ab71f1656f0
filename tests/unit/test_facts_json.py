"""The JSON snapshot: documented, versioned, and lossless for every recorded host."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from svdops.errors import FactsError
from svdops.host.facts import SCHEMA, HostFacts
from svdops.host.probe.gather import gather_facts
from svdops.host.shell import RecordedShell
from tests.support.paths import REPO, recorded_hosts

HOSTS = recorded_hosts()


def test_schema_doc_is_current() -> None:
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "gen_facts_schema.py"), "--check"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("host", HOSTS, ids=lambda p: p.name)
def test_round_trip_every_recorded_host(host: Path) -> None:
    facts = gather_facts(RecordedShell(host))
    text = facts.to_json()
    again = HostFacts.from_json(text)
    assert again == facts
    assert json.loads(text)["schema"] == SCHEMA


def test_unknown_keys_are_ignored_within_a_major() -> None:
    facts = gather_facts(RecordedShell(HOSTS[0]))
    data = facts.to_dict()
    data["added_in_a_later_minor"] = {"x": 1}
    data["gpus"] = [dict(g, new_field=3) for g in data["gpus"]]
    assert HostFacts.from_dict(data) == facts


def test_other_major_is_refused_with_a_hint() -> None:
    with pytest.raises(FactsError, match="not supported") as info:
        HostFacts.from_dict({"schema": "svdops.facts/2", "hostname": "h", "collected_at": "t", "source": "s"})
    assert info.value.hint and "svdops facts --json" in info.value.hint


@pytest.mark.parametrize(
    "patch, where",
    [
        ({"memory": {"total_mib": "lots"}}, "facts.memory.total_mib"),
        ({"driver": {"userspace_version": "not-a-version"}}, "facts.driver.userspace_version"),
        ({"driver": {"library_mismatch": "yes"}}, "facts.driver.library_mismatch"),
        ({"gpus": {"index": 0}}, "facts.gpus"),
        ({"storage": {"md_arrays": [{"name": "md0"}]}}, "facts.storage.md_arrays[0]"),
    ],
)
def test_wrong_types_name_the_key(patch: dict[str, object], where: str) -> None:
    data = {"schema": SCHEMA, "hostname": "h", "collected_at": "t", "source": "s", **patch}
    with pytest.raises(FactsError) as info:
        HostFacts.from_dict(data)
    assert str(info.value).startswith(where)


def _recorded() -> dict[str, object]:
    return gather_facts(RecordedShell(HOSTS[0])).to_dict()


def test_the_schema_key_is_required() -> None:
    data = _recorded()
    del data["schema"]
    with pytest.raises(FactsError, match="no `schema` key") as info:
        HostFacts.from_dict(data)
    assert info.value.hint and "svdops facts --json" in info.value.hint


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, '{"a": ' * 100_000 + "1" + "}" * 100_000])
def test_json_nested_past_the_recursion_limit_is_a_facts_error(text: str) -> None:
    with pytest.raises(FactsError, match="nested too deeply") as info:
        HostFacts.from_json(text, where="deep.json")
    assert info.value.where == "deep.json"


def test_a_snapshot_nested_deeper_than_any_host_is_refused_before_it_is_read() -> None:
    data = _recorded()
    deep: object = 1
    for _ in range(200):  # parses, and would recurse 200 levels through a snapshot's own types
        deep = {"name": "sda", "type": "disk", "children": [deep]}
    data["storage"] = {"block_devices": [deep]}
    with pytest.raises(FactsError, match="nested too deeply"):
        HostFacts.from_dict(data)


def test_real_nesting_is_well_inside_the_limit() -> None:
    for host in HOSTS:
        HostFacts.from_json(gather_facts(RecordedShell(host)).to_json())


@pytest.mark.parametrize(
    ("path", "value", "where"),
    [
        (("memory", "total_mib"), -1, "facts.memory.total_mib"),
        (("memory", "total_mib"), 10**30 // 2**20, "facts.memory.total_mib"),  # 10^30 bytes
        (("memory", "total_mib"), float("nan"), "facts.memory.total_mib"),
        (("gpus", 0, "power_draw_w"), float("inf"), "facts.gpus[0].power_draw_w"),
        (("gpus", 0, "temperature_c"), 10**9, "facts.gpus[0].temperature_c"),
        (("gpus", 0, "index"), 5_000_000, "facts.gpus[0].index"),
        (("topology", "gpu_count"), 3_000_000, "facts.topology.gpu_count"),
        (("storage", "block_devices", 0, "size_bytes"), 10**30, "facts.storage.block_devices[0].size_bytes"),
        (("gpus",), [{"index": i % 8, "name": "x"} for i in range(1025)], "facts.gpus"),
    ],
)
def test_impossible_numbers_name_the_field(path: tuple[object, ...], value: object, where: str) -> None:
    data = _recorded()
    node: object = data
    for key in path[:-1]:
        node = node[key]  # type: ignore[index]
    node[path[-1]] = value  # type: ignore[index]
    with pytest.raises(FactsError) as info:
        HostFacts.from_dict(data)
    assert str(info.value).startswith(where), str(info.value)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_in_the_text_are_refused(constant: str) -> None:
    with pytest.raises(FactsError, match=constant):
        HostFacts.from_json('{"schema": "svdops.facts/1", "memory": {"total_mib": ' + constant + "}}")


def test_real_values_stay_inside_the_limits() -> None:
    """The limits refuse what no host has, not what hosts have: -1 is sysfs's 'no NUMA node'."""
    data = _recorded()
    data["gpus"][0]["numa_node"] = -1  # type: ignore[index]
    data["gpus"][0]["temperature_c"] = 95  # type: ignore[index]
    assert HostFacts.from_dict(data).gpus[0].numa_node == -1
