"""Emergency posting: the broadcast to every account and channel, and the watcher that drafts
posts from the JMA's disaster-information feed for approval.

``koho.emergency.broadcast`` validates, plans and sends a broadcast; ``koho.emergency.jma``
parses and filters bulletins, ``koho.emergency.drafts`` words drafts,
``koho.emergency.triggers`` holds the deferrable trigger. The broadcast (ledger, calendar) and
the trigger (Airflow) are not imported here: parsing and drafting stay light and usable without
Airflow. The watcher's settings schema is :mod:`koho.config.emergency`. The bulletin class
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
