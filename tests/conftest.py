"""Shared fixtures: the recorded host folders under tests/fixtures/hosts/ (paths from tests.support)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.paths import recorded_host


@pytest.fixture
def host_dir() -> Callable[[str], Path]:
    """host_dir('h100-sxm-ubuntu2404') -> the recorded folder (fails the test if it is absent)."""
    return recorded_host


@pytest.fixture
def host_text() -> Callable[[str, str], str]:
    """host_text('h100-sxm-ubuntu2404', 'nvidia-smi-q.xml') -> the recorded stdout."""

    def read(name: str, key: str) -> str:
        return (recorded_host(name) / key).read_text()

    return read
