"""Per-platform text fitting and Japanese sentence/word boundaries.

``fit(platform, text, ...)`` adapts a post to a platform's length rule by that platform's own
count.
The Japanese tokenizer is only loaded when first needed.
"""

from __future__ import annotations

from koho.text.fitting import FittedText, TextDoesNotFit, TextError, fit
from koho.text.rules import TextRule, UnknownPlatform, count, rules_for

__all__ = [
    "FittedText",
    "TextDoesNotFit",
    "TextError",
    "TextRule",
    "UnknownPlatform",
    "count",
    "fit",
    "rules_for",
]
