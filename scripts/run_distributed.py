"""Koho's distributed deployment without Docker: ``python scripts/run_distributed.py``.

Runs docker-compose.yaml's Airflow topology (CeleryExecutor, Postgres, Redis, api-server,
scheduler, dag-processor, triggerer, Celery worker) as local processes; how is
:mod:`harness.distributed`'s business. With ``--demo`` (the default) the demo city is wired as in
the end-to-end tests: the sandbox and an SMTP catcher run in this process and the accounts'
connections are ``AIRFLOW_CONN_*`` variables given to every service. Ctrl-C stops every
process and drops what was created.
"""

from __future__ import annotations

import argparse
import secrets
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _entry in (ROOT / "plugins", ROOT):
    if str(_entry) not in sys.path:
        sys.path.insert(0, str(_entry))

from harness.distributed import (  # noqa: E402
    LOCAL_HOST,
    DistributedAirflow,
    DistributedError,
    demo_city_env,
    free_port,
    reachable,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run docker-compose.yaml's Airflow topology as local processes.")
    parser.add_argument("--api-port", type=int, default=None, help="api-server port (default: 8080 if free)")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="AIRFLOW_HOME, logs and mailbox go here (default: .airflow/distributed-<id>, kept)",
    )
    parser.add_argument(
        "--no-demo",
        dest="demo",
        action="store_false",
        help="do not start the sandbox and mail catcher nor create the demo connections",
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds for the topology to become healthy")
    args = parser.parse_args(argv)

    api_port = args.api_port or (8080 if _port_free(8080) else free_port())
    for host, port, what in ((LOCAL_HOST, 5432, "Postgres"), (LOCAL_HOST, 6379, "Redis")):
        if not reachable(host, port):
            print(f"Koho: {what} is not reachable on {host}:{port}", file=sys.stderr)
            return 2

    workdir = args.workdir or ROOT / ".airflow" / f"distributed-{secrets.token_hex(3)}"
    stack: list[Callable[[], None]] = []
    extra_env: dict[str, str] = {}
    demo_lines: list[str] = []

    def interrupt(*_: object) -> None:  # first Ctrl-C or SIGTERM stops; later ones must not cut the cleanup
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        if args.demo:
            from aiosmtpd.controller import Controller
            from aiosmtpd.handlers import Mailbox

            from sandbox.bootstrap import seed_demo
            from sandbox.server import SandboxServer

            sandbox = SandboxServer().start()
            stack.append(sandbox.stop)
            mail_dir = workdir / "mailbox"  # a Maildir: aiosmtpd creates it (with tmp/, new/, cur/)
            workdir.mkdir(parents=True, exist_ok=True)
            smtp_port = free_port()
            controller = Controller(Mailbox(str(mail_dir)), hostname=LOCAL_HOST, port=smtp_port)
            controller.start()
            stack.append(controller.stop)
            demo = demo_city_env(sandbox.url, smtp_port)
            seed_demo(sandbox.url)
            extra_env = demo["env"]
            demo_lines = [
                f"  Sandbox:     {sandbox.url}/_docs ({len(demo['rows'])} demo accounts)",
                f"  Mails:       {mail_dir}/new (SMTP 127.0.0.1:{smtp_port})",
            ]

        airflow = DistributedAirflow(
            workdir=workdir,
            extra_env=extra_env,
            api_port=api_port,
            startup_timeout=args.timeout,
            echo=lambda m: print(f"Koho: {m}", flush=True),
        )
        print("Koho: starting docker-compose.yaml's Airflow services as local processes…", flush=True)
        with airflow:
            print()
            print(f"  Koho (distributed) is running: {airflow.base_url}")
            print(f"  Login:       {airflow.username} / {airflow.password}")
            print(f"  Services:    {', '.join(airflow.services)} (CeleryExecutor, broker {airflow.broker_url})")
            print(f"  Databases:   {airflow.metadata_db} (metadata, Celery results), {airflow.ledger_db} (ledger)")
            for line in demo_lines:
                print(line)
            print(f"  Logs:        {airflow.log_dir}/<service>.log, task logs in {airflow.home}/logs")
            print(
                f"  Healthy after {airflow.timings['healthy_s']:.1f}s. Stop with Ctrl-C "
                "(the databases are dropped and the Redis db flushed; logs stay).",
                flush=True,
            )
            while True:
                airflow.check_alive()
                time.sleep(1)
    except KeyboardInterrupt:
        print("\nKoho: stopping…")
    except DistributedError as exc:
        print(f"Koho: {exc}", file=sys.stderr)
        return 1
    finally:
        for undo in reversed(stack):
            undo()
    print("Koho: stopped.")
    return 0


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((LOCAL_HOST, port))
        except OSError:
            return False
    return True


if __name__ == "__main__":
    sys.exit(main())
