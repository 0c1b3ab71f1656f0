"""One rooted error hierarchy. Every error a person sees says what, where, and what to run next.

The core raises these; only the CLI turns them into messages and exit codes:
0 ok, 1 findings failed, 2 bad input or usage, 3 host unreachable, 4 run failed.
"""

from __future__ import annotations


class SvdopsError(Exception):
    """Base of every expected failure. `hint` is the next thing the user should try."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None, where: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.where = where

    def __str__(self) -> str:
        prefix = f"{self.where}: " if self.where else ""
        return f"{prefix}{self.message}"


class BadInputError(SvdopsError):
    """The user gave us something we cannot use: a file, an option, a value."""

    exit_code = 2


class ProfileError(BadInputError):
    """A profile file is missing, malformed or fails validation. `where` is 'file: key.path'."""


class FactsError(BadInputError):
    """A facts snapshot or a recorded folder cannot be read."""


class HostUnreachableError(SvdopsError):
    """A host could not be reached or authenticated against."""

    exit_code = 3


class MissingDependencyError(SvdopsError):
    """An optional dependency (extra) is not installed."""

    exit_code = 2


class RunFailedError(SvdopsError):
    """A benchmark or provisioning run failed after it started."""

    exit_code = 4


class InterruptedRunError(SvdopsError):
    """The user interrupted a run (Ctrl-C); finished results were kept."""

    exit_code = 130
