"""Small, forgiving text helpers shared by the parsers. None of them raises on odd input."""

from __future__ import annotations

import json
import re
from typing import Any

_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_INT_RE = re.compile(r"-?\d+")
_FLOAT_RE = re.compile(r"-?\d+(?:\.\d+)?")
# nvidia-smi writes these where a value does not apply; they mean "unknown", not zero
_NOT_AVAILABLE = {"", "n/a", "[n/a]", "not supported", "[not supported]", "unknown", "none", "[unknown error]"}


def strip_ansi(text: str) -> str:
    """nvidia-smi underlines table headers with escape codes even when writing to a file."""
    return _ANSI_RE.sub("", text)


def is_not_available(text: str | None) -> bool:
    return text is None or text.strip().lower() in _NOT_AVAILABLE


def first_int(text: str | None) -> int | None:
    """The first integer in text ('81559 MiB' -> 81559, '16x' -> 16); None for N/A or no digits."""
    if is_not_available(text):
        return None
    assert text is not None
    match = _INT_RE.search(text)
    return int(match.group(0)) if match else None


def first_float(text: str | None) -> float | None:
    if is_not_available(text):
        return None
    assert text is not None
    match = _FLOAT_RE.search(text)
    return float(match.group(0)) if match else None


def enabled(text: str | None) -> bool | None:
    """'Enabled'/'Disabled' (and the other spellings tools use) as a bool; None when unknown."""
    if is_not_available(text):
        return None
    assert text is not None
    word = text.strip().lower()
    if word in {"enabled", "enable", "on", "yes", "true", "1", "active"}:
        return True
    if word in {"disabled", "disable", "off", "no", "false", "0", "inactive"}:
        return False
    return None


def load_json(text: str) -> Any:
    """Parsed JSON, or None when the text is not JSON (truncated, binary, empty)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def key_values(text: str, sep: str = "=") -> dict[str, str]:
    """'KEY=value' lines (os-release style, quotes removed); later keys win."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, found, value = line.partition(sep)
        if not found or not key.strip() or key.lstrip().startswith("#"):
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        out[key.strip()] = value
    return out
