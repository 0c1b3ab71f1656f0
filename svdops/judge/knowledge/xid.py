"""NVIDIA's Xid catalogue (xid.yaml beside this): what an Xid code means and what to do, each row sourced."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

from svdops.scenarios import load_shipped_yaml

ACTIONS = ("app", "reset", "reboot", "rma", "none")
SEVERITIES = ("fail", "warn")


class XidDataError(RuntimeError):
    """xid.yaml is malformed: a bug in svdops, caught by the tests."""


@dataclass(frozen=True)
class Xid:
    code: int
    name: str
    meaning: str
    action: str  # one of ACTIONS
    severity: str  # "fail" | "warn"
    source: str


@dataclass(frozen=True)
class XidCatalogue:
    version: str
    as_of: str
    url: str
    rows: dict[int, Xid]


@functools.cache
def catalogue() -> XidCatalogue:
    text = resources.files("svdops.judge.knowledge").joinpath("xid.yaml").read_text(encoding="utf-8")
    data = load_shipped_yaml(text)
    rows: dict[int, Xid] = {}
    for i, row in enumerate(data.get("xids") or []):
        where = f"xid.yaml: xids[{i}]"
        try:
            xid = Xid(int(row["code"]), str(row["name"]), str(row["meaning"]), str(row["action"]),
                      str(row["severity"]), str(row["source"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise XidDataError(f"{where}: {exc}") from None
        if xid.action not in ACTIONS or xid.severity not in SEVERITIES or not xid.source.strip():
            raise XidDataError(f"{where}: action {xid.action!r}, severity {xid.severity!r} or source is wrong")
        if xid.code in rows:
            raise XidDataError(f"{where}: code {xid.code} listed twice")
        rows[xid.code] = xid
    return XidCatalogue(str(data["version"]), str(data["as_of"]), str(data["catalogue"]), rows)


def find_xid(code: int) -> Xid | None:
    """The catalogue's row for an Xid code, None for a code it does not hold."""
    return catalogue().rows.get(code)
