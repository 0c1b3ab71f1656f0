"""svdops.text: the one sanitiser of host text, on the sequences a lying host would send."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from svdops.text import markup_safe, printable


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),  # OSC: retitle the terminal window
        ("\x1b[2J", "\\x1b[2J"),  # CSI: clear the screen
        ("ok\rFAIL", "ok\\rFAIL"),  # a bare CR overwrites the line
        ("ab\x08\x08", "ab\\x08\\x08"),  # backspaces rub out what was printed
        ("\x9b2J", "\\x9b2J"),  # the one-character C1 CSI
        ("a\x00b\x7f", "a\\x00b\\x7f"),  # NUL, DEL
        ("\u202egpu01", "\\u202egpu01"),  # a right-to-left override reorders what a reader sees
        ("a\u2028b", "a\\u2028b"),  # a line separator
        ("\ud800", "\\ud800"),  # a lone surrogate (json.loads makes one; no encoder writes it)
        ("NVIDIA H100 80GB HBM3", "NVIDIA H100 80GB HBM3"),
        ("Ubuntu 24.04 — ünïcødé 日本", "Ubuntu 24.04 — ünïcødé 日本"),
        ("two\tcolumns\nand lines", "two\tcolumns\nand lines"),
    ],
)
def test_printable(raw: str, shown: str) -> None:
    assert printable(raw) == shown
    assert printable(shown) == shown  # escaping is idempotent: the escapes are plain text


def test_one_line_also_writes_out_tab_and_newline() -> None:
    assert printable("gpu01\n[red]gpu02 ok\t", one_line=True) == "gpu01\\n[red]gpu02 ok\\t"


def test_every_c0_and_c1_control_but_tab_and_newline_is_escaped() -> None:
    controls = "".join(chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)])
    assert {c for c in printable(controls) if ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F} == {"\t", "\n"}
    assert printable(controls, one_line=True).isprintable()


def render(markup: str, *, terminal: bool = False) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, width=300, force_terminal=terminal, color_system="truecolor" if terminal else None)
    console.print(markup, highlight=False)
    return buffer.getvalue()


@pytest.mark.parametrize("hostile", ["[/]", "[bold red]x", "[link=https://evil.example]y[/link]", "a\\", "x\\[b]"])
def test_markup_safe_is_shown_as_typed(hostile: str) -> None:
    out = render(f"host [dim]{markup_safe(hostile)}[/dim]")  # [/] alone raised MarkupError before
    assert f"host {hostile}" in out
    assert "\x1b]8;" not in out  # no hyperlink


def test_markup_safe_reaches_the_terminal_without_controls() -> None:
    out = render("[bold]" + markup_safe("gpu\x1b]0;pwned\x07\x1b[2J\x9b") + "[/bold]", terminal=True)
    assert "]0;pwned\x07" not in out and "\x1b[2J" not in out and "\x9b" not in out
    assert "gpu\\x1b]0;pwned\\x07\\x1b[2J\\x9b" in out


def test_markup_safe_takes_any_value() -> None:
    assert markup_safe(None) == "None"
    assert markup_safe(3.5) == "3.5"
