"""Comparable version numbers. Versions are never compared as strings ("580.9" < "580.10")."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

# digits glued to a word ("x86_64", "sm_90") are not a version; a leading v/V ("V13.0.88") is fine
# parts are capped at 9 digits: a longer run of digits is garbage, not a version (and int() would choke)
_VERSION_RE = re.compile(r"(?:(?<=[vV])|(?<![\w.]))(\d{1,9}(?:\.\d{1,9})*)(?![\d])(?:[.+-]?([A-Za-z][\w.+-]*))?")


@total_ordering
@dataclass(frozen=True)
class Version:
    """A dotted numeric version with an optional label ("2.11.0+cu130" -> (2, 11, 0), "cu130").

    Comparison uses the numeric parts only, padded with zeros, so 13.0 == 13.0.0 and
    the local label of a wheel (+cu130) does not affect ordering.
    """

    parts: tuple[int, ...]
    label: str = ""
    text: str = ""

    @classmethod
    def parse(cls, text: str) -> Version:
        found = parse_version(text)
        if found is None:
            raise ValueError(f"not a version: {text!r}")
        return found

    def _key(self, width: int) -> tuple[int, ...]:
        return self.parts + (0,) * (width - len(self.parts))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        width = max(len(self.parts), len(other.parts))
        return self._key(width) == other._key(width)

    def __hash__(self) -> int:
        parts = list(self.parts)
        while parts and parts[-1] == 0:
            parts.pop()
        return hash(tuple(parts))

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        width = max(len(self.parts), len(other.parts))
        return self._key(width) < other._key(width)

    @property
    def major(self) -> int:
        return self.parts[0]

    @property
    def minor(self) -> int:
        return self.parts[1] if len(self.parts) > 1 else 0

    def truncate(self, n: int) -> Version:
        """The first n numeric parts: Version('12.8.93').truncate(2) == 12.8."""
        parts = self.parts[:n]
        return Version(parts, "", ".".join(map(str, parts)))

    def __str__(self) -> str:
        return self.text or ".".join(map(str, self.parts)) + (f"+{self.label}" if self.label else "")


def parse_version(text: str | None) -> Version | None:
    """The first version number in `text`, or None. Accepts '580.159.04', 'V13.0.88', '2.11.0+cu130'."""
    if not text:
        return None
    match = _VERSION_RE.search(text.strip())
    if not match:
        return None
    parts = tuple(int(p) for p in match.group(1).split("."))
    label = match.group(2) or ""
    return Version(parts, label, match.group(0))


def cuda_from_int(value: int) -> Version:
    """CUDA's integer encoding (13000 -> 13.0, 12080 -> 12.8) as used by NVML and cudart."""
    major, rest = divmod(int(value), 1000)
    return Version((major, rest // 10), "", f"{major}.{rest // 10}")


def cudnn_from_int(value: int) -> Version:
    """cuDNN's integer encoding: 91900 -> 9.19.0 (9.x: M*10000+m*100+p), 8902 -> 8.9.2 (8.x: M*1000+m*100+p)."""
    value = int(value)
    if value >= 90000:
        major, rest = divmod(value, 10000)
    else:
        major, rest = divmod(value, 1000)
    minor, patch = divmod(rest, 100)
    return Version((major, minor, patch), "", f"{major}.{minor}.{patch}")
