"""Host data is data: the one sanitiser every renderer runs text from outside through before people see it.

A host name, an OS or GPU name, a CPU model, a note quoting stderr, an inventory label, a profile's
description: any of it may carry terminal control sequences (`ESC ] 0;title BEL` retitles the window,
`ESC [ 2J` clears the screen, a bare CR or backspace overwrites what was printed, U+009B is a one-byte
CSI), a NUL, or a bidi override that reorders what a reader sees. XML 1.0 cannot hold most of them at
all, not even as character references.

`printable` writes each such character as a visible escape (`\\x1b`, `\\u202e`), so the text stays
readable and none of it acts. `markup_safe` is that text made literal for rich's console markup, so a
`[bold]` or `[/]` in a host name is shown, not applied (nor a crash). JSON keeps the data as it came:
json.dumps escapes every one of these characters itself, and `svdops facts --json` must round-trip.
"""

from __future__ import annotations

import re

# C0 controls except TAB and LF, DEL, C1 controls, bidi marks/embeddings/overrides/isolates, the line and
# paragraph separators, the BOM, lone surrogates (a JSON file may carry "\ud800"; no encoder writes one)
# and the two non-characters XML refuses.
_CONTROL = "\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff\ufeff\ufffe\uffff"
_UNPRINTABLE = re.compile(f"[{_CONTROL}]")
_UNPRINTABLE_ONE_LINE = re.compile(f"[\t\n{_CONTROL}]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code == 0x09:
        return "\\t"
    if code == 0x0A:
        return "\\n"
    if code == 0x0D:
        return "\\r"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, one_line: bool = False) -> str:
    """`text` with every control character written as a visible escape; TAB and LF kept unless one_line
    (names, titles and table rows: a newline in a host name must not forge a second line)."""
    pattern = _UNPRINTABLE_ONE_LINE if one_line else _UNPRINTABLE
    return pattern.sub(_visible, text) if pattern.search(text) else text


def markup_safe(text: object, *, one_line: bool = False) -> str:
    """Any value as literal text inside rich console markup: printable, with its `[...]` tags escaped."""
    from rich.markup import escape  # rich is a core dependency; loaded here so the judge and report need not

    return escape(printable(str(text), one_line=one_line))
