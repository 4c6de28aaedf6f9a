"""The posting calendar: entries in YAML, CSV or Excel, validated with located problems.

``load_calendar(directory, config, now=...)`` gives the usable entries and every problem (file,
line or sheet cell, field, account). The volume rules (caps, spacing, quiet hours) live in
:mod:`koho.calendar.rules` as pure functions shared with the ad-hoc post form.
"""

from koho.calendar.rules import PlannedSlot, VolumeProblem, volume_problems
from koho.calendar.schema import CalendarEntry
from koho.calendar.sources import read_source, write_csv_template, write_template
from koho.calendar.targets import resolve_targets
from koho.calendar.validate import CalendarLoad, load_calendar, validate_sources

__all__ = [
    "CalendarEntry",
    "CalendarLoad",
    "PlannedSlot",
    "VolumeProblem",
    "load_calendar",
    "read_source",
    "resolve_targets",
    "validate_sources",
    "volume_problems",
    "write_csv_template",
    "write_template",
]
