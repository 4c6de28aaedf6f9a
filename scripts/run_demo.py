"""``make run``: the demo city on this machine — sandbox, mail catcher and Airflow (LocalExecutor, SQLite).

Steps (each safe to repeat): write the rolling demo calendar relative to now
(``koho.calendar.demo``), migrate Airflow's metadata DB and Koho's ledger, start the
sandbox and register the demo accounts there, create one Airflow connection per account plus
``koho_db`` and ``koho_smtp``, start a local SMTP catcher, start Airflow, wait until its API
answers, print the address and login. Ctrl-C stops everything this script started.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]

from scripts.koho_env import airflow_env  # noqa: E402

SANDBOX_PORT = int(os.environ.get("KOHO_SANDBOX_PORT", "8750"))
SMTP_PORT = int(os.environ.get("KOHO_SMTP_PORT", "8025"))
AIRFLOW_PORT = int(os.environ.get("KOHO_AIRFLOW_PORT", "8080"))


def wait_for(url: str, what: str, proc: subprocess.Popen, timeout: float) -> None:
    """Poll ``url`` until it answers 200 (or the process dies, or ``timeout`` passes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with code {proc.returncode}; see its log above")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{what} did not answer at {url} within {timeout:.0f}s")


def start(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    handle = log.open("ab")
    return subprocess.Popen(cmd, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)


def stop(procs: list[subprocess.Popen]) -> None:
    for proc in reversed(procs):
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def port_in_use(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def main() -> None:
    # Ctrl-C must stop everything even when this was started from a shell that ignores SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    busy = [port for port in (SANDBOX_PORT, SMTP_PORT, AIRFLOW_PORT) if port_in_use(port)]
    if busy:
        raise SystemExit(
            f"port(s) {', '.join(map(str, busy))} already in use on 127.0.0.1: is Koho already running? "
            "Stop it, or choose other ports with KOHO_AIRFLOW_PORT, KOHO_SANDBOX_PORT, KOHO_SMTP_PORT."
        )
    from koho.calendar.demo import write_demo_calendar
    from koho.config import load_config
    from koho.config.loader import include_dir
    from koho.ledger.db import Ledger
    from koho.timeutil import utcnow
    from scripts.demo_connections import build_connections, import_connections

    env = airflow_env(ROOT)
    env["AIRFLOW__API__PORT"] = str(AIRFLOW_PORT)
    env.setdefault("AIRFLOW__API__BASE_URL", f"http://127.0.0.1:{AIRFLOW_PORT}")
    env.setdefault("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", f"http://127.0.0.1:{AIRFLOW_PORT}/execution/")
    home = Path(env["AIRFLOW_HOME"])
    logs = home / "logs" / "koho"
    os.environ.update(env)
    print(f"Koho: AIRFLOW_HOME={home.relative_to(ROOT)}")
    config = load_config()
    for problem in config.problems:
        print(f"  config problem: {problem}")
    demo_calendar = write_demo_calendar(include_dir() / "calendar", config, now=utcnow())
    print(f"Koho: demo calendar from now to two weeks ahead: include/calendar/{demo_calendar.name}")

    print("Koho: migrating Airflow's metadata database (first time takes a minute)…")
    subprocess.run(["airflow", "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(
        ["airflow", "pools", "import", str(ROOT / "deploy" / "pools.json")],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    ledger_file = home.parent / "koho-ledger.db"
    Ledger(f"sqlite:///{ledger_file}").migrate()

    procs: list[subprocess.Popen] = []
    try:
        print(f"Koho: starting the sandbox on 127.0.0.1:{SANDBOX_PORT} and a mail catcher on :{SMTP_PORT}")
        sandbox = start([sys.executable, "-m", "sandbox", "--port", str(SANDBOX_PORT)], env, logs / "sandbox.log")
        procs.append(sandbox)
        mailbox = home.parent / "mailbox"
        mailbox.mkdir(parents=True, exist_ok=True)
        procs.append(
            start(
                [
                    sys.executable,
                    "-m",
                    "aiosmtpd",
                    "-n",
                    "-l",
                    f"127.0.0.1:{SMTP_PORT}",
                    "-c",
                    "aiosmtpd.handlers.Mailbox",
                    str(mailbox),
                ],
                env,
                logs / "smtp.log",
            )
        )
        sandbox_url = f"http://127.0.0.1:{SANDBOX_PORT}"
        wait_for(f"{sandbox_url}/healthz", "sandbox", sandbox, 60)
        connections = build_connections(
            sandbox_url,
            home.parent / "demo-secrets.json",
            ledger_url=f"sqlite:///{ledger_file}",
            smtp=f"127.0.0.1:{SMTP_PORT}",
        )
        import_connections(connections, env)
        print(f"Koho: {len(connections)} connections ready (one per demo account, koho_db, koho_smtp)")

        # The FAB auth manager knows per-DAG rules (only KohoCrisis may trigger emergency_broadcast);
        # `airflow standalone` would force the simple auth manager, so the components start one by one.
        users_file = home / "koho-users.json"
        subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "koho_auth.py"), "--users-file", str(users_file)],
            env=env,
            check=True,
        )
        print(f"Koho: starting Airflow on http://127.0.0.1:{AIRFLOW_PORT} …")
        for component in ("scheduler", "dag-processor", "triggerer", "api-server"):
            cmd = ["airflow", component] + (["--port", str(AIRFLOW_PORT)] if component == "api-server" else [])
            procs.append(start(cmd, env, logs / f"{component}.log"))
        wait_for(f"http://127.0.0.1:{AIRFLOW_PORT}/api/v2/version", "airflow api-server", procs[-1], 300)
        users = json.loads(users_file.read_text())
        print()
        print(f"  Koho is running:  http://127.0.0.1:{AIRFLOW_PORT}")
        for name, secret in users.items():
            print(f"  Login:            {name} / {secret}")
        print(f"  Sandbox:          {sandbox_url}/_docs   (platform stand-in, admin API)")
        print(f"  Mails land in:    {mailbox.relative_to(ROOT)}/new")
        print(f"  Logs:             {logs.relative_to(ROOT)}/")
        print("  Stop with Ctrl-C.")
        while all(p.poll() is None for p in procs):
            time.sleep(1)
        dead = next(p for p in procs if p.poll() is not None)
        print(f"Koho: {' '.join(map(str, dead.args[:3]))} stopped (exit {dead.returncode}); shutting down")
    except KeyboardInterrupt:
        print("\nKoho: stopping…")
    finally:
        stop(procs)
        print("Koho: stopped.")


if __name__ == "__main__":
    main()
