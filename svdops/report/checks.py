"""Check files (`svdops check --format json`, single host or fleet) -> one findings frame."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from svdops.errors import BadInputError
from svdops.judge.documents import CHECK_SCHEMA, FLEET_CHECK_SCHEMA
from svdops.report.run_fields import BUG_NOTE, MAX_NAME_CHARS, as_dict, as_list, as_text, joined_text
from svdops.runs.documents import read_json_file

FINDING_COLUMNS = ["host", "profile", "source", "status", "id", "title", "expected", "actual", "hint"]


@dataclass
class CheckSet:
    findings: pd.DataFrame
    hosts: list[dict[str, Any]]  # host, profile, source, summary counts, failed, reachable, message
    skipped: list[str] = field(default_factory=list)  # check files passed over, each with its reason


def load_checks(paths: Sequence[Path]) -> CheckSet:
    """`svdops check --format json` files (one host) and fleet check files (many hosts).

    Each file is read inside its own boundary, like each run: one that cannot be read (not a file, past
    the size cap, not UTF-8 JSON, not a check document) is skipped with a note naming it and why.
    """
    rows: list[dict[str, Any]] = []
    hosts: list[dict[str, Any]] = []
    skipped: list[str] = []
    for path in paths:
        file_rows: list[dict[str, Any]] = []
        file_hosts: list[dict[str, Any]] = []
        try:
            _read_check_file(Path(path), file_rows, file_hosts)
        except BadInputError as exc:
            skipped.append(f"{exc.where or path}: {exc.message}")
            continue
        except MemoryError:
            skipped.append(f"{path}: too large to hold in memory")
            continue
        except Exception as exc:  # unforeseen: said plainly, and the report still written
            skipped.append(f"{path}: svdops failed reading it ({type(exc).__name__}: {str(exc)[:200]}); {BUG_NOTE}")
            continue
        rows += file_rows
        hosts += file_hosts
    return CheckSet(pd.DataFrame(rows, columns=FINDING_COLUMNS), hosts, skipped)


def _read_check_file(path: Path, rows: list[dict[str, Any]], hosts: list[dict[str, Any]]) -> None:
    doc = read_json_file(path, follow_symlinks=True)  # named on the command line: a link there is the user's
    if doc is None:
        raise BadInputError(
            "check file not found", where=str(path), hint="write one with `svdops check --format json -o FILE`"
        )
    schema = doc.get("schema") if isinstance(doc, dict) else None
    if schema == CHECK_SCHEMA:
        _add_check(doc, str(path), rows, hosts)
    elif schema == FLEET_CHECK_SCHEMA:
        for entry in as_list(doc.get("hosts")):
            if isinstance(as_dict(entry).get("check"), dict):
                _add_check(entry["check"], str(path), rows, hosts)
            elif isinstance(entry, dict):
                hosts.append(
                    {
                        "host": _name(entry.get("name")),
                        "profile": as_text(doc.get("profile")),
                        "source": str(path),
                        "summary": {},
                        "failed": None,
                        "reachable": False,
                        "message": joined_text(entry.get("status"), entry.get("message")),
                    }
                )
    else:
        shown = schema if isinstance(schema, str | int | float | bool | None) else type(schema).__name__
        raise BadInputError(
            f"not an svdops check result (schema {str(shown)[:80]!r})",
            where=str(path),
            hint=f"expected {CHECK_SCHEMA} from `svdops check --format json` or {FLEET_CHECK_SCHEMA}",
        )


def _name(value: Any) -> str:
    text = as_text(value) or "?"
    return text if len(text) <= MAX_NAME_CHARS else text[: MAX_NAME_CHARS - 1] + "…"


def _add_check(doc: Mapping[str, Any], source: str, rows: list[dict[str, Any]], hosts: list[dict[str, Any]]) -> None:
    host = _name(doc.get("host"))
    summary = {str(k): v for k, v in as_dict(doc.get("summary")).items() if isinstance(v, int) and abs(v) < 2**63}
    hosts.append(
        {
            "host": host,
            "profile": as_text(doc.get("profile")),
            "source": source,
            "summary": summary,
            "failed": bool(doc.get("failed")),
            "reachable": True,
            "message": None,
        }
    )
    for finding in as_list(doc.get("findings")):
        f = as_dict(finding)
        rows.append(
            {
                "host": host,
                "profile": as_text(doc.get("profile")),
                "source": source,
                **{k: as_text(f.get(k)) for k in FINDING_COLUMNS[3:]},
            }
        )
