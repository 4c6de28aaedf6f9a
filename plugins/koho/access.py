"""Who may do what with the posting workflows: role names and the DAGs' ``access_control``.

Koho runs Airflow with the FAB auth manager because it is the one that knows per-DAG rules
(``access_control`` on a DAG); the simple auth manager only has four global roles. The roles:

* ``KohoStaff`` — any department's staff: may trigger **adhoc_post** (and read it). An ad-hoc
  post they trigger waits for a PR approver.
* ``KohoPR`` — the PR section's operators: may trigger **adhoc_post** and answer its approval
  requests (``HITL Detail`` edit, given globally by the setup script, scoped by DAG edit here).
* ``KohoCrisis`` — crisis officers: the only non-admin role that may trigger
  **emergency_broadcast**; they also approve the drafts of **disaster_watch**.

Under FAB a DAG run may be created only by a user with edit rights on that DAG *and* create
rights on its runs, so a role that is not listed here gets 403 from
``POST /api/v2/dags/emergency_broadcast/dagRuns``. Users also get FAB's ``Viewer`` role (read
everything, change nothing). The roles must exist before the DAG processor parses these DAGs:
``scripts/koho_auth.py`` creates them (``make run`` and the compose init call it).
"""

from __future__ import annotations

STAFF_ROLE = "KohoStaff"
PR_ROLE = "KohoPR"
CRISIS_ROLE = "KohoCrisis"
ROLES = (STAFF_ROLE, PR_ROLE, CRISIS_ROLE)

#: Global permissions of the roles, beyond what DAGs grant them (resource, action).
ROLE_PERMISSIONS: dict[str, tuple[tuple[str, str], ...]] = {
    STAFF_ROLE: (),
    # answering approval requests ("Required actions") is a global FAB permission
    PR_ROLE: (("HITL Detail", "can_read"), ("HITL Detail", "can_edit"), ("HITL Detail", "menu_access")),
    CRISIS_ROLE: (("HITL Detail", "can_read"), ("HITL Detail", "can_edit"), ("HITL Detail", "menu_access")),
}

_TRIGGER = {"DAGs": {"can_read", "can_edit"}, "DAG Runs": {"can_read", "can_create"}}


def _grant(*roles: str) -> dict[str, dict[str, set[str]]]:
    return {role: {resource: set(actions) for resource, actions in _TRIGGER.items()} for role in roles}


ADHOC_ACCESS = _grant(STAFF_ROLE, PR_ROLE)
EMERGENCY_ACCESS = _grant(CRISIS_ROLE)
WATCH_ACCESS = _grant(CRISIS_ROLE)
