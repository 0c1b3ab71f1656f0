"""Shared test helpers: the recorded host folders under tests/fixtures/hosts/."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

FIXTURE_HOSTS = Path(__file__).parent / "fixtures" / "hosts"


@pytest.fixture
def host_dir() -> Callable[[str], Path]:
    """host_dir('h100-sxm-ubuntu2404') -> the recorded folder (fails the test if it is absent)."""

    def find(name: str) -> Path:
        path = FIXTURE_HOSTS / name
        assert path.is_dir(), f"no recorded host {name!r} under {FIXTURE_HOSTS}"
        return path

    return find


@pytest.fixture
def host_text(host_dir: Callable[[str], Path]) -> Callable[[str, str], str]:
    """host_text('h100-sxm-ubuntu2404', 'nvidia-smi-q.xml') -> the recorded stdout."""

    def read(name: str, key: str) -> str:
        return (host_dir(name) / key).read_text()

    return read
