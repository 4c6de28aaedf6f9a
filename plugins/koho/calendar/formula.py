"""Refuse cell text a spreadsheet would run as a formula (CSV / formula injection).

Calendar cells travel on: into the ledger, into the newsletter editors' exports, back into
someone's Excel. A value such as ``=HYPERLINK(...)`` or ``-2+3+cmd|' /C calc'!A0`` is harmless
to Koho but runs when a spreadsheet opens it, so it is rejected at the door, never evaluated and
never passed on.

The rule, and why it is not simply "starts with = + - @":

* Anything blank in front is looked through: tab, carriage return, newline, any Unicode space
  (the ideographic space U+3000 too) and zero-width characters. A text is posted and exported
  stripped, so what counts is its first visible character.
* ``=`` (ASCII or full-width) is always refused: every spreadsheet reads it as a formula.
* ``+``, ``-`` and ``@`` (ASCII or full-width) are refused only when what follows *looks like a
  formula*: a function call (``SUM(``, ``cmd|``), a cell or range reference (``A1``, ``$B$2``),
  or a sheet reference (``!``). Japanese text starts with these signs all
  the time ("-ご注意ください", "＋αの情報", "@koho_city さんより", "+81-3-1234-5678"), and none of
  those can do anything when opened; refusing them would only teach staff to fight the tool.

A false positive is possible ("-A4 size"); the message says how to write it instead.
"""

from __future__ import annotations

import re
import unicodedata

_SIGNS = "=+-@"
_FULLWIDTH = {"＝": "=", "＋": "+", "－": "-", "＠": "@", "−": "-"}
#: Invisible characters that are not whitespace to ``str.isspace`` (zero-width space, BOM, fillers).
_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e\u115f\u1160\u3164\uffa0\u2800"

_FUNCTION = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*\s*\(")
_DDE = re.compile(r"[A-Za-z0-9_]+\s*\|")
_REFERENCE = re.compile(r"(?<![A-Za-z0-9_])\$?[A-Za-z]{1,3}\$?[0-9]{1,7}(?![A-Za-z0-9_\u3040-\u30ff\u4e00-\u9fff])")
_SHEET = re.compile(r"[A-Za-z0-9_']+!")
_STARTS_FORMULA = re.compile(r"[A-Za-z0-9$('\"=+\-@]")


def formula_problem(value: str) -> str | None:
    """Why ``value`` would run as a spreadsheet formula, or ``None`` when it is safe text."""
    if not value:
        return None
    stripped = _lstrip_blank(value)
    hidden = len(stripped) != len(value)
    if not stripped:
        return None
    first = _FULLWIDTH.get(stripped[0], stripped[0])
    if first not in _SIGNS:
        return None
    sign = repr(stripped[0]) + (" after a tab, space or invisible character" if hidden else "")
    if first == "=":
        return f"starts with {sign}: a spreadsheet would run it as a formula"
    rest = unicodedata.normalize("NFKC", stripped[1:]).lstrip(" ")
    if not rest or not _STARTS_FORMULA.match(rest):
        return None
    for pattern, what in (
        (_FUNCTION, "a function call"),
        (_DDE, "a command (DDE) call"),
        (_SHEET, "a sheet reference"),
        (_REFERENCE, "a cell reference"),
    ):
        found = pattern.search(rest)
        if found:
            return (
                f"starts with {sign} followed by {what} ('{found.group(0).strip()}'): a spreadsheet would run it "
                "as a formula; start the text with another character (e.g. '・')"
            )
    return None


def _lstrip_blank(value: str) -> str:
    """``value`` from its first character that is neither whitespace nor invisible."""
    for index, char in enumerate(value):
        if not (char.isspace() or char in _INVISIBLE or unicodedata.category(char) in ("Cc", "Cf", "Zs")):
            return value[index:]
    return ""
