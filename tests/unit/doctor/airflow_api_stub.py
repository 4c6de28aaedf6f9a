"""A small HTTP server answering the three Airflow REST calls the health check makes.

It speaks the shapes of Airflow 3's ``/api/v2/monitor/health`` (HealthInfoResponse),
``/auth/token`` and ``/api/v2/pools`` (PoolCollectionResponse); its Date header can be set off
by a chosen number of seconds to play a server whose clock is wrong.
"""

from __future__ import annotations

import json
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class AirflowApiStub:
    def __init__(self, *, password: str, username: str = "admin") -> None:
        self.username, self.password = username, password
        self.triggerer: dict[str, Any] = {
            "status": "healthy",
            "latest_triggerer_heartbeat": "2026-12-01T00:00:00+00:00",
        }
        self.pools: list[str] = ["default_pool"]
        self.clock_offset_s = 0.0
        self.requests: list[str] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def date_time_string(self, timestamp: float | None = None) -> str:
                return formatdate(time.time() + stub.clock_offset_s, usegmt=True)

            def _answer(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                stub.requests.append(f"GET {self.path}")
                if self.path == "/api/v2/monitor/health":
                    health = {"metadatabase": {"status": "healthy"}, "scheduler": {"status": "healthy"}}
                    self._answer(200, {**health, "triggerer": stub.triggerer})
                elif self.path.startswith("/api/v2/pools"):
                    if self.headers.get("Authorization") != "Bearer jwt-1":
                        self._answer(401, {"detail": "Not authenticated"})
                        return
                    pools = [{"name": name, "slots": 1} for name in stub.pools]
                    self._answer(200, {"pools": pools, "total_entries": len(pools)})
                else:
                    self._answer(404, {"detail": "Not Found"})

            def do_POST(self) -> None:
                stub.requests.append(f"POST {self.path}")
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if self.path == "/auth/token" and body == {"username": stub.username, "password": stub.password}:
                    self._answer(201, {"access_token": "jwt-1"})
                else:
                    self._answer(401, {"detail": "Invalid credentials"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> AirflowApiStub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
