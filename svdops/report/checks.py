"""Check files (`svdops check --format json`, single host or fleet) -> one findings frame."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from svdops.errors import BadInputError
from svdops.judge.documents import CHECK_SCHEMA, FLEET_CHECK_SCHEMA
from svdops.report.run_fields import as_dict, as_text, joined_text

FINDING_COLUMNS = ["host", "profile", "source", "status", "id", "title", "expected", "actual", "hint"]


@dataclass
class CheckSet:
    findings: pd.DataFrame
    hosts: list[dict[str, Any]]  # host, profile, source, summary counts, failed, reachable, message


def load_checks(paths: Sequence[Path]) -> CheckSet:
    """`svdops check --format json` files (one host) and fleet check files (many hosts)."""
    rows: list[dict[str, Any]] = []
    hosts: list[dict[str, Any]] = []
    for path in paths:
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise BadInputError(
                "check file not found", where=str(path), hint="write one with `svdops check --format json -o FILE`"
            ) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadInputError(f"cannot read check file: {exc}", where=str(path)) from exc
        schema = doc.get("schema") if isinstance(doc, dict) else None
        if schema == CHECK_SCHEMA:
            _add_check(doc, str(path), rows, hosts)
        elif schema == FLEET_CHECK_SCHEMA:
            for entry in doc.get("hosts") or []:
                if isinstance(as_dict(entry).get("check"), dict):
                    _add_check(entry["check"], str(path), rows, hosts)
                elif isinstance(entry, dict):
                    hosts.append(
                        {
                            "host": str(entry.get("name") or "?"),
                            "profile": doc.get("profile"),
                            "source": str(path),
                            "summary": {},
                            "failed": None,
                            "reachable": False,
                            "message": joined_text(entry.get("status"), entry.get("message")),
                        }
                    )
        else:
            raise BadInputError(
                f"not an svdops check result (schema {schema!r})",
                where=str(path),
                hint=f"expected {CHECK_SCHEMA} from `svdops check --format json` or {FLEET_CHECK_SCHEMA}",
            )
    return CheckSet(pd.DataFrame(rows, columns=FINDING_COLUMNS), hosts)


def _add_check(doc: Mapping[str, Any], source: str, rows: list[dict[str, Any]], hosts: list[dict[str, Any]]) -> None:
    host = str(doc.get("host") or "?")
    summary = {k: int(v) for k, v in as_dict(doc.get("summary")).items() if isinstance(v, int)}
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
    for finding in doc.get("findings") or []:
        f = as_dict(finding)
        rows.append(
            {
                "host": host,
                "profile": as_text(doc.get("profile")),
                "source": source,
                **{k: as_text(f.get(k)) for k in FINDING_COLUMNS[3:]},
            }
        )
