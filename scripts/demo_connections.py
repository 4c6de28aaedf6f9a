"""Register the demo city's accounts in a sandbox and create their Airflow connections.

``python scripts/demo_connections.py --sandbox-url URL --secrets FILE [--ledger-url URL] [--smtp HOST:PORT]``

Used by ``make run`` and by the compose file's ``airflow-init``. Safe to repeat: tokens are
kept in ``--secrets`` (outside git) and connections are imported with ``--overwrite``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for entry in (ROOT / "plugins", ROOT):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))


def local_smtp_connection(host: str, port: int, *, retry_limit: int = 0) -> dict:
    """``koho_smtp`` for a mail catcher without TLS (the demo's, the tests' aiosmtpd): extra as a dict."""
    return {
        "conn_type": "smtp",
        "host": host,
        "port": port,
        "extra": {
            "disable_tls": True,
            "disable_ssl": True,
            "from_email": "koho@city.example.jp",
            "retry_limit": retry_limit,
            "timeout": 10,
        },
    }


def build_connections(sandbox_url: str, secrets_file: Path, *, ledger_url: str | None, smtp: str | None) -> dict:
    from koho.accounts.sync import registry_rows
    from koho.config import load_config
    from sandbox.bootstrap import load_or_create_secrets, register_accounts, seed_demo

    rows = registry_rows(load_config())
    tokens = load_or_create_secrets(secrets_file, [row["id"] for row in rows])
    connections = register_accounts(sandbox_url, rows, tokens)
    seed_demo(sandbox_url)
    if ledger_url:
        connections["koho_db"] = (
            {"conn_type": "sqlite", "host": ledger_url.removeprefix("sqlite:///")}
            if ledger_url.startswith("sqlite:///")
            else _uri_connection(ledger_url)
        )
    if smtp:
        host, _, port = smtp.partition(":")
        smtp_conn = local_smtp_connection(host, int(port or 25), retry_limit=1)
        connections["koho_smtp"] = {**smtp_conn, "extra": json.dumps(smtp_conn["extra"])}
    return connections


def _uri_connection(uri: str) -> dict:
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    return {
        "conn_type": "postgres",
        "host": parts.hostname,
        "port": parts.port or 5432,
        "login": parts.username,
        "password": parts.password,
        "schema": parts.path.lstrip("/"),
    }


def import_connections(connections: dict, env: dict | None = None) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(connections, handle)
        path = handle.name
    try:
        os.chmod(path, 0o600)
        subprocess.run(
            ["airflow", "connections", "import", "--overwrite", path], env=env, check=True, stdout=subprocess.DEVNULL
        )
    finally:
        os.unlink(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sandbox-url", required=True)
    parser.add_argument("--secrets", required=True, type=Path)
    parser.add_argument("--ledger-url")
    parser.add_argument("--smtp")
    args = parser.parse_args()
    connections = build_connections(args.sandbox_url, args.secrets, ledger_url=args.ledger_url, smtp=args.smtp)
    import_connections(connections)
    print(f"{len(connections)} connections imported")


if __name__ == "__main__":
    main()
