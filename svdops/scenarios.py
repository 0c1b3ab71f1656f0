"""The one scenario registry: svdops/data/scenarios.yaml.

A scenario is what `svdops bench --scenario NAME` runs (model, frames, resolution, steps, ...) and what
`svdops check`/`plan` know of its GPU memory needs (a sourced `memory:` block). Both used to live in two
files that could drift apart; now the bench settings (svdops.bench.config), the knowledge base's memory
rows (svdops.judge.knowledge) and the report's run-name parsing all read this one document. Pure: no torch.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml

from svdops.errors import BadInputError

SCENARIOS_FILE = "scenarios.yaml"
WHERE = f"svdops/data/{SCENARIOS_FILE}"


def load_shipped_yaml(text: str) -> Any:
    """yaml.safe_load for the data files svdops ships (this registry, the knowledge base): through libyaml
    where PyYAML has it, about ten times faster and the same values (tests/unit/test_knowledge.py holds
    them equal); files from users keep PyYAML's own loader and its error positions."""
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 (a safe loader)


@cache
def scenarios_document() -> dict[str, Any]:
    """The registry as parsed YAML, checked for the two mappings everything else relies on."""
    text = resources.files("svdops").joinpath("data", SCENARIOS_FILE).read_text(encoding="utf-8")
    data = load_shipped_yaml(text)
    if not isinstance(data, dict) or not isinstance(data.get("scenarios"), dict):
        raise BadInputError("no `scenarios:` mapping", where=WHERE)
    if not isinstance(data.get("version"), str):
        raise BadInputError("no string `version:` (the knowledge base reports it)", where=WHERE)
    return data


def scenario_names() -> list[str]:
    return list(scenarios_document()["scenarios"])


def scenario_values(name: str) -> dict[str, Any]:
    """A scenario's entry merged over the document's defaults (the `memory:` block included)."""
    doc = scenarios_document()
    entries = doc["scenarios"]
    if name not in entries:
        raise BadInputError(f"unknown scenario {name!r}", where="--scenario",
                            hint=f"choose one of: {', '.join(entries)}")
    entry = entries[name] or {}
    if not isinstance(entry, dict):
        raise BadInputError("expected a mapping", where=f"{WHERE}: scenarios.{name}")
    return {**(doc.get("defaults") or {}), **entry}
