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
