"""The answers of one gather run, and the notes explaining what could not be known."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from svdops.host.facts import Note
from svdops.host.shell import Command, CommandResult

T = TypeVar("T")


class Outputs:
    """CommandResults by recording key; a command that was not run reads as 'not recorded'."""

    def __init__(self, results: dict[str, CommandResult]) -> None:
        self._results = results

    def result(self, command: Command) -> CommandResult:
        return self._results.get(command.key) or CommandResult(command.key, command.argv, None, "")

    def text(self, command: Command) -> str | None:
        """stdout of a command that succeeded and printed something, else None."""
        result = self.result(command)
        return result.stdout if result.ok and result.stdout.strip() else None

    def any_text(self, command: Command) -> str | None:
        """stdout whatever the exit status (tools like dpkg-query and systemctl exit non-zero
        while still answering), None when the program is missing or printed nothing."""
        result = self.result(command)
        if result.missing or result.timed_out or not result.stdout.strip():
            return None
        return result.stdout

    def first(self, *commands: Command) -> tuple[str | None, CommandResult]:
        """The first command that answered, and its result; else None and the first one's result."""
        for command in commands:
            text = self.text(command)
            if text is not None:
                return text, self.result(command)
        return None, self.result(commands[0])

    def all_output(self, *commands: Command) -> list[str]:
        """stdout and stderr of each command, for messages that may be on either stream."""
        texts = []
        for command in commands:
            result = self.result(command)
            texts += [result.stdout, result.stderr]
        return texts


class Notes:
    """Collects Note(subject, reason); one note per subject (the first reason is the root cause)."""

    def __init__(self) -> None:
        self._notes: dict[str, Note] = {}

    def add(self, subject: str, reason: str) -> None:
        self._notes.setdefault(subject, Note(subject, reason))

    def unavailable(self, subject: str, result: CommandResult) -> None:
        self.add(subject, result.reason)

    def as_tuple(self) -> tuple[Note, ...]:
        return tuple(self._notes.values())


def parse_or_note(out: Outputs, notes: Notes, command: Command, parse: Callable[[str], T | None], subject: str,
                  garbage: str) -> T | None:
    """`parse` of a command's answer; None with a note naming why (no answer, or `garbage` when the
    answer could not be parsed)."""
    text = out.text(command)
    parsed = parse(text) if text else None
    if parsed is None:
        notes.add(subject, garbage if text is not None else out.result(command).reason)
    return parsed
