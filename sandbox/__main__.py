"""Run the sandbox: ``python -m sandbox --port 8750 [--demo]``. Binds to loopback only."""

from __future__ import annotations

import argparse

import uvicorn

from sandbox.app import SERVER_OPTIONS, create_app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8750)
    parser.add_argument("--demo", action="store_true", help="seed the Japanese demo data at start")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    app = create_app()
    if args.demo:
        from sandbox.demo import seed

        seed(app.state.sandbox)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, **SERVER_OPTIONS)


if __name__ == "__main__":
    main()
