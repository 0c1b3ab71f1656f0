"""Where the recorded data lives. Every suite asks here instead of rebuilding paths from `__file__`.

The project's tests read only `tests/fixtures/` (copied from the shared recordings, with provenance in
each folder's README), so a checkout runs its tests without anything beside it.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
HOSTS = FIXTURES / "hosts"
PROFILES = FIXTURES / "profiles"
NVML_RECORDINGS = FIXTURES / "nvml"


def recorded_host(name: str) -> Path:
    """The recorded folder of one host; a missing one fails loudly (a typo must not test nothing)."""
    path = HOSTS / name
    assert path.is_dir(), f"no recorded host {name!r} under {HOSTS}"
    return path


def recorded_hosts(having: str | None = None) -> list[Path]:
    """Every recorded host folder (those that recorded `having`, if given), sorted; never empty."""
    found = sorted(p for p in HOSTS.iterdir() if p.is_dir() and (having is None or (p / having).is_file()))
    assert found, f"no recorded host under {HOSTS}" + (f" has {having}" if having else "")
    return found


def recorded_outputs(key: str) -> list[str]:
    """The non-empty recorded outputs named `key` across all hosts; never empty."""
    texts = [path.read_text() for path in sorted(HOSTS.glob(f"*/{key}")) if path.stat().st_size]
    assert texts, f"no host under {HOSTS} recorded a non-empty {key}"
    return texts


def fixture_profile(name: str) -> Path:
    """A profile under tests/fixtures/profiles (the file need not exist: some tests want it absent)."""
    return PROFILES / name
