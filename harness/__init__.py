"""Test harnesses shared by the end-to-end tests and the benchmarks.

* :mod:`harness.waiting` — waiting for an event: a condition polled with a deadline (tenacity);
* :mod:`harness.airflow_stack` — a real, local Airflow with the demo city against the sandbox;
* :mod:`harness.koho_stack` — that Airflow with the FAB auth manager and Koho's users, and the
  per-module reset that lets many test modules share one stack;
* :mod:`harness.distributed` — docker-compose.yaml's CeleryExecutor topology as local processes.

Nothing here is imported by Koho itself (``plugins/koho``) or by the DAGs.
"""
