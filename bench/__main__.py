"""``python -m bench``: set up paths (plugins/ and the repo root) before anything imports Koho."""

from bench.runner import main, setup_paths

setup_paths()

raise SystemExit(main())
