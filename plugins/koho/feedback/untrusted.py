"""Residents' text as Koho may process it: bounded in length, valid Unicode.

Comments arrive from platforms' JSON, which may carry lone surrogates (``"\\ud800"``): Python
keeps them in a ``str``, but the tokenizer and every UTF-8 encoder refuse them. They become
U+FFFD here, and the text is cut to a bound so that a 50,000-character comment costs no more
than a long one. The original stays untouched in the ledger.
"""

from __future__ import annotations

#: What routing and marking read of one comment; longer comments are judged by their start.
MAX_CHARS = 5_000


def bounded(text: object, max_chars: int = MAX_CHARS) -> str:
    """``text`` as a valid, bounded string (not a string: its ``str``, e.g. a number sent as text)."""
    value = text if isinstance(text, str) else ("" if text is None else str(text))
    value = value[:max_chars]
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # UTF-16 joins a split pair back into its character and replaces only the lone ones.
        value = value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return value
