"""Emergency posting: watch the JMA's disaster-information feed and draft posts for approval.

``koho.emergency.jma`` parses and filters bulletins, ``koho.emergency.drafts`` words drafts,
``koho.emergency.triggers`` holds the deferrable trigger. The trigger module imports Airflow,
so it is not imported here: parsing and drafting stay usable without it. The bulletin class
is exported as ``JmaWarning`` (``koho.emergency.jma.Warning``) so that importing it never
shadows Python's built-in ``Warning``.
"""

from koho.config.emergency import EmergencySettings, load_emergency_settings
from koho.emergency.drafts import EmergencyDraft, draft_post
from koho.emergency.jma import (
    AreaWarning,
    JmaDocumentError,
    JmaWarning,
    WarningKind,
    draft_key,
    parse_document,
    parse_feed,
    relevant,
    select_new,
)

__all__ = [
    "AreaWarning",
    "EmergencyDraft",
    "EmergencySettings",
    "JmaDocumentError",
    "JmaWarning",
    "WarningKind",
    "draft_key",
    "draft_post",
    "load_emergency_settings",
    "parse_document",
    "parse_feed",
    "relevant",
    "select_new",
]
