"""Write docs/facts-schema.md from svdops/host/facts.py (field names, types, and their trailing comments).

    .venv/bin/python scripts/gen_facts_schema.py          # rewrite the doc
    .venv/bin/python scripts/gen_facts_schema.py --check  # exit 1 if the doc is stale (run by the tests)
"""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from svdops.host import facts as facts_module  # noqa: E402
from svdops.versions import Version  # noqa: E402

DOC = ROOT / "docs" / "facts-schema.md"
HEADER = f"""# HostFacts JSON schema (`{facts_module.SCHEMA}`)

Written by `svdops facts --json`, read by `svdops check --facts FILE`. Generated from
`svdops/host/facts.py` by `scripts/gen_facts_schema.py`; a test fails when it is stale.

Rules for readers and writers:
- `schema` is `svdops.facts/<major>`. A reader refuses another major; fields are only ever added
  within a major, so readers must ignore keys they do not know.
- `null` means "not available": the reason is in `notes` (`subject` is the dotted path below).
- Versions are strings (`"580.159.04"`, `"13.0"`); compare them numerically, never as text.
- Units are in the names: `_mib` (MiB, 2^20 bytes), `_bytes`, `_w` (watts), `_c` (degrees Celsius).
"""


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    args = get_args(tp)
    if origin is tuple:
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return "object (string -> string)"
    if args and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return f"{_type_name(rest[0])} or null"
    if tp is Version:
        return "version string"
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return f"`{tp.__name__}`"
    return {str: "string", int: "integer", float: "number", bool: "boolean"}.get(tp, str(tp))


def _comments() -> dict[tuple[str, str], str]:
    """(class, field) -> trailing comment in facts.py."""
    found: dict[tuple[str, str], str] = {}
    current = ""
    for line in Path(facts_module.__file__).read_text().splitlines():
        if m := re.match(r"class (\w+)", line):
            current = m.group(1)
        elif m := re.match(r"    (\w+): [^#]+#\s*(.+)$", line):
            found[(current, m.group(1))] = m.group(2).strip()
    return found


def render() -> str:
    comments = _comments()
    out = [HEADER]
    seen: list[type] = []
    queue: list[type] = [facts_module.HostFacts]
    while queue:
        cls = queue.pop(0)
        if cls in seen:
            continue
        seen.append(cls)
        out.append(f"\n## `{cls.__name__}`\n")
        doc = (cls.__doc__ or "").strip().splitlines()
        if doc and not doc[0].startswith(cls.__name__ + "("):
            out.append(doc[0] + "\n")
        out.append("| field | type | meaning |\n|---|---|---|")
        hints = get_type_hints(cls)
        for f in dataclasses.fields(cls):
            tp = hints[f.name]
            out.append(f"| `{f.name}` | {_type_name(tp)} | {comments.get((cls.__name__, f.name), '')} |")
            for inner in (tp, *get_args(tp)):
                if isinstance(inner, type) and dataclasses.is_dataclass(inner) and inner not in seen:
                    queue.append(inner)
    return "\n".join(out) + "\n"


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        if not DOC.exists() or DOC.read_text() != text:
            print(f"{DOC} is stale: run scripts/gen_facts_schema.py", file=sys.stderr)
            return 1
        return 0
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
