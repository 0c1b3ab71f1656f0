"""Small, forgiving text helpers shared by the parsers. None of them raises on odd input."""

from __future__ import annotations

import json
import re
from typing import Any

from svdops.versions import Version, parse_version

_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_INT_RE = re.compile(r"-?\d+")
_FLOAT_RE = re.compile(r"-?\d+(?:\.\d+)?")
_MAX_DIGITS = 30
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
    # int() refuses strings over 4300 digits; no real reading is longer than a few
    return int(match.group(0)) if match and len(match.group(0)) <= _MAX_DIGITS else None


def first_float(text: str | None) -> float | None:
    if is_not_available(text):
        return None
    assert text is not None
    match = _FLOAT_RE.search(text)
    return float(match.group(0)) if match and len(match.group(0)) <= _MAX_DIGITS else None


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


def version_of(text: str | None) -> Version | None:
    """parse_version for untrusted output: None instead of ValueError (a 5000-digit "version")."""
    try:
        return parse_version(text)
    except ValueError:
        return None


def small_int(text: str, max_digits: int = 18) -> int | None:
    """int(text) for a plain decimal string of sane length, else None."""
    text = text.strip()
    return int(text) if text.isdecimal() and len(text) <= max_digits else None


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
