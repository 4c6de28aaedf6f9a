"""One safe way to put text into a spreadsheet cell (XLSX or CSV) that someone will open in Excel.

Every exporter (newsletter, review tables, digests) writes cells through :func:`safe_cell`, so
that any text that passed validation is written without crashing and never runs as a formula:

* characters XML 1.0 cannot hold (most control characters) are dropped: openpyxl refuses them
  with ``IllegalCharacterError`` and one of them would stop the whole export;
* a text whose first visible character is ``=``, ``+``, ``-`` or ``@`` (ASCII or full-width),
  even behind spaces, tabs, newlines or zero-width characters, gets a leading apostrophe, as
  OWASP advises for CSV and spreadsheet exports: Excel shows it as text. This is stricter than
  the calendar's formula check on purpose: an export cannot ask anyone to reword a text.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

#: Characters XML 1.0 forbids even when escaped (what openpyxl's ILLEGAL_CHARACTERS_RE refuses).
XML_ILLEGAL = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
FORMULA_SIGNS = frozenset("=+-@＝＋－＠−")


def safe_cell(value: Any) -> Any:
    """``value`` as a cell Excel shows as text; non-strings pass unchanged."""
    if not isinstance(value, str):
        return value
    text = XML_ILLEGAL.sub("", value)
    first = next((c for c in text if not _blank(c)), "")
    if first in FORMULA_SIGNS or (first and first != text[0] and text[0] in "\t\r"):
        return "'" + text
    return text


def _blank(char: str) -> bool:
    return char.isspace() or unicodedata.category(char) in ("Cf", "Zs", "Cc")
