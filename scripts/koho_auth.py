"""Create Koho's roles and the demo users in Airflow's FAB auth manager, idempotently.

Run after ``airflow db migrate`` and before the DAG processor starts (the DAGs' ``access_control``
names these roles; a role that does not exist makes the DAG fail to serialize):

    python scripts/koho_auth.py --users-file "$AIRFLOW_HOME/koho-users.json"

* Roles ``KohoStaff``, ``KohoPR``, ``KohoCrisis`` (see ``koho.access``), with their
  global permissions; their per-DAG permissions come from the DAGs' ``access_control`` and are
  synced by the DAG processor.
* Demo users (``--demo-users``, the default): ``admin`` (Admin, the PR approver of the demo),
  ``crisis`` (Viewer + KohoCrisis: may trigger emergency_broadcast), ``staff`` (Viewer +
  KohoStaff: may trigger adhoc_post, may not trigger emergency_broadcast nor approve).
  Passwords are generated on first run and kept in ``--users-file`` (mode 0600); an existing
  user keeps its password and gets its roles set again. Nothing secret is committed.

Re-running changes nothing that is already right.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for entry in (ROOT / "plugins", ROOT):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

from koho.access import CRISIS_ROLE, ROLE_PERMISSIONS, STAFF_ROLE  # noqa: E402

#: user name -> (roles, first name, last name)
DEMO_USERS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "admin": (("Admin",), "Koho", "Admin"),
    "crisis": (("Viewer", CRISIS_ROLE), "Kiki", "Kanri"),
    "staff": (("Viewer", STAFF_ROLE), "Doro", "Kasen"),
}


def load_users_file(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    return {str(k): str(v) for k, v in json.loads(path.read_text(encoding="utf-8")).items()}


def save_users_file(path: Path, passwords: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(passwords, handle, indent=2)
    os.replace(tmp, path)


def ensure_roles(sm) -> list[str]:
    """Koho's roles with their global permissions; returns what was added."""
    added = []
    for role_name, perms in ROLE_PERMISSIONS.items():
        role = sm.find_role(role_name)
        if role is None:
            role = sm.add_role(role_name)
            added.append(f"role {role_name}")
        have = {(p.resource.name, p.action.name) for p in role.permissions}
        for resource, action in perms:
            if (resource, action) in have:
                continue
            permission = sm.create_permission(action, resource)
            sm.add_permission_to_role(role, permission)
            added.append(f"{role_name}: {action} on {resource}")
    return added


def ensure_users(sm, users: dict[str, tuple[tuple[str, ...], str, str]], passwords: dict[str, str]) -> list[str]:
    changed = []
    for username, (role_names, first, last) in users.items():
        roles = []
        for name in role_names:
            role = sm.find_role(name)
            if role is None:
                raise SystemExit(f"role {name!r} does not exist (run 'airflow db migrate' first)")
            roles.append(role)
        user = sm.find_user(username=username)
        if user is None:
            password = passwords.get(username) or secrets.token_urlsafe(12)
            passwords[username] = password
            sm.add_user(username, first, last, f"{username}@city.example.jp", roles, password)
            changed.append(f"user {username} ({', '.join(role_names)})")
            continue
        if {r.name for r in user.roles} != set(role_names):
            user.roles = roles
            sm.update_user(user)
            changed.append(f"user {username}: roles set to {', '.join(role_names)}")
        if username not in passwords:
            # the user exists but its password is not known here: give it a new one we know
            passwords[username] = secrets.token_urlsafe(12)
            sm.reset_password(user.id, passwords[username])
            changed.append(f"user {username}: new password")
    return changed


def setup(users_file: Path, *, demo_users: bool = True) -> dict[str, str]:
    """Create the roles (and demo users); returns user name -> password for the demo users."""
    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder

    passwords = load_users_file(users_file)
    with get_application_builder() as appbuilder:
        sm = appbuilder.sm
        sm.sync_roles()  # FAB's own roles (Admin, Viewer, ...) and their permissions
        changes = ensure_roles(sm)
        if demo_users:
            changes += ensure_users(sm, DEMO_USERS, passwords)
    if demo_users:
        save_users_file(users_file, {u: passwords[u] for u in DEMO_USERS})
    for change in changes:
        print(f"koho auth: {change}")
    if not changes:
        print("koho auth: roles and users already in place")
    return {u: passwords[u] for u in DEMO_USERS} if demo_users else {}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    home = Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")
    parser.add_argument(
        "--users-file",
        type=Path,
        default=home / "koho-users.json",
        help="where the demo users' passwords are kept (0600)",
    )
    parser.add_argument("--no-demo-users", action="store_true", help="create the roles only")
    args = parser.parse_args(argv)
    setup(args.users_file, demo_users=not args.no_demo_users)


if __name__ == "__main__":
    main()
