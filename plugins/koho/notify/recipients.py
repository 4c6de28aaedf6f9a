"""Who is told, from the configuration: the PR section, the crisis team, a department.

Also the name mails are signed with. A configuration that failed to load (no policy) still
lets Koho mail whatever addresses it has, under the name "Koho", so problems reach people.
"""

from __future__ import annotations

from collections.abc import Iterable

from koho.config.loader import KohoConfig
from koho.notify.message import NotifyError
from koho.notify.sender import DEFAULT_MAX_BYTES

FALLBACK_NAME = "Koho"


def city_name(config: KohoConfig) -> str:
    """The city's name for subjects and bodies, or "Koho" when policy.yaml did not load."""
    return config.policy.city_name if config.policy else FALLBACK_NAME


def max_message_bytes(config: KohoConfig) -> int:
    """The size limit of one mail (policy.yaml ``mail.max_message_mb``)."""
    return config.policy.mail.max_message_bytes if config.policy else DEFAULT_MAX_BYTES


def pr_section(config: KohoConfig) -> list[str]:
    """The PR section's address (departments.yaml, the department ``policy.pr_department``)."""
    return [e for e in [config.pr_email()] if e]


def crisis_team(config: KohoConfig) -> list[str]:
    """The crisis addresses (policy.yaml ``crisis_emails``) and the PR section, each once."""
    crisis = [str(e) for e in config.policy.crisis_emails] if config.policy else []
    return unique(crisis, pr_section(config))


def department(config: KohoConfig, department_id: str) -> list[str]:
    """A department's address (departments.yaml); an unknown id is an error naming the file."""
    found = config.departments_by_id.get(department_id)
    if found is None:
        raise NotifyError(f"departments.yaml: no department '{department_id}' to mail")
    return [str(found.email)]


def unique(*groups: Iterable[str | None]) -> list[str]:
    """Addresses of several groups, each once, in a stable order."""
    return sorted({str(a) for group in groups for a in group if a})
