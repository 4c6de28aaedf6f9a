"""The operator's health check (``python -m koho.doctor``, DAG ``koho_doctor``).

Each check says in Japanese what is wrong and what to do: connections missing, tokens expired
(as ``accounts_sync`` last found them: the platforms are not asked twice), Airflow pools
missing, triggerer down, ledger not migrated, SMTP relay unreachable, clocks apart. Messages
name connection ids, never their passwords or tokens.
"""

from __future__ import annotations

from koho.doctor.findings import Finding, Status, summary
from koho.doctor.run import DoctorSettings, Probe, run_checks

__all__ = ["DoctorSettings", "Finding", "Probe", "Status", "run_checks", "summary"]
