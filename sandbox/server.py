"""Start the sandbox inside a process (tests, benchmarks) and talk to its admin API.

``SandboxServer`` runs uvicorn on a free loopback port in a thread and returns once the server
is accepting connections (it waits for uvicorn's ``started`` flag, not for a fixed time).
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
from typing import Any

import requests
import uvicorn

from sandbox.app import SERVER_OPTIONS, create_app
from sandbox.state import SandboxState


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SandboxServer:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.state = SandboxState()
        self.app = create_app(self.state)
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off", **SERVER_OPTIONS
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="koho-sandbox", daemon=True)
        self.http = requests.Session()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> SandboxServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"sandbox did not start on port {self.port}")
            time.sleep(0.01)  # polling uvicorn's own started flag, not waiting out a guess
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # admin helpers -------------------------------------------------------------------

    def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, f"{self.url}/_admin{path}", timeout=10, **kwargs)
        response.raise_for_status()
        return response.json()

    def add_account(self, platform: str, handle: str, *, token: str | None = None, **fields: Any) -> dict:
        """Create an official account with a fresh random token (never a committed one)."""
        if token is None and platform != "bluesky":
            token = secrets.token_urlsafe(24)
        body = {"platform": platform, "handle": handle, "token": token, **fields}
        created = self.admin("POST", "/accounts", json=[body])[0]
        return {**created, "token": token, **{k: v for k, v in fields.items() if k == "password"}}

    def fault(self, platform: str, kind: str, **fields: Any) -> dict:
        return self.admin("POST", "/faults", json={"platform": platform, "kind": kind, **fields})

    def limit(self, platform: str, bucket: str, limit: int, window_seconds: float) -> dict:
        return self.admin(
            "PUT",
            "/ratelimits",
            json={"platform": platform, "bucket": bucket, "limit": limit, "window_seconds": window_seconds},
        )

    def posts(self, platform: str | None = None, account: str | None = None) -> list[dict]:
        params = {k: v for k, v in {"platform": platform, "account": account}.items() if v}
        return self.admin("GET", "/posts", params=params)

    def comment(self, platform: str, account: str, author: str, text: str, post_id: str | None = None) -> dict:
        return self.admin(
            "POST",
            "/comments",
            json={"platform": platform, "account": account, "author": author, "text": text, "post_id": post_id},
        )
