"""The emergency form's fixed words: severities, kinds of post, default targets.

A module of its own, importing only the channel registry (names, no adapters), because the DAG
files read it while they are parsed (the trigger forms' choices): ``koho.emergency.broadcast``
pulls in the ledger and the calendar, half a second of imports the dag-processor would pay on
every parse of two DAG files.
"""

from __future__ import annotations

from koho.channels.registry import CHANNELS

SEVERITIES = ("critical", "high", "advisory")
KINDS = ("alert", "update", "all_clear")
KIND_LABELS = {"alert": "緊急情報", "update": "続報", "all_clear": "解除"}
#: Every active account, and the channels a broadcast reaches unless the form names its targets.
DEFAULT_TARGETS = ("all", *(name for name, info in CHANNELS.items() if info.emergency_default))
