"""Shared fixtures: the recorded host folders under tests/fixtures/hosts/ (paths from tests.support)."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
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


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own empty $XDG_CACHE_HOME (the inventory cache lives there): no test reads
    what another one cached, and none writes into the cache of the person running the tests."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))


@pytest.fixture(scope="session")
def _signal_handlers_at_start() -> dict[int, object]:
    return {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}


@pytest.fixture(autouse=True)
def _signal_handlers_back(_signal_handlers_at_start: dict[int, object]) -> Iterator[None]:
    """A test (or a module fixture) that runs ansible-runner in this process, whose handlers only set a
    cancel flag, must not take Ctrl-C away from the tests after it: SIGINT and SIGTERM are put back to what
    they were when the session started, before and after each test."""
    _put_back(_signal_handlers_at_start)
    yield
    _put_back(_signal_handlers_at_start)


def _put_back(handlers: dict[int, object]) -> None:
    for sig, handler in handlers.items():
        if handler is not None and signal.getsignal(sig) is not handler:
            signal.signal(sig, handler)  # type: ignore[arg-type]
