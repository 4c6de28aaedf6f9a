"""Per-platform text fitting, Japanese sentence/word boundaries and post templates.

``fit(platform, text, ...)`` adapts a post to a platform's length rule by that platform's own
count; ``render_post(platform, context)`` fills the post templates in ``include/templates``.
The Japanese tokenizer is only loaded when first needed.
"""

from __future__ import annotations

from koho.text.fitting import FittedText, TextDoesNotFit, TextError, fit
from koho.text.rules import TextRule, UnknownPlatform, count, rules_for
from koho.text.templates import render_post

__all__ = [
    "FittedText",
    "TextDoesNotFit",
    "TextError",
    "TextRule",
    "UnknownPlatform",
    "count",
    "fit",
    "render_post",
    "rules_for",
]
