"""Task body of ``koho_doctor``: run the checks, mail the PR section through the alert path, fail on errors.

Problems are recorded as ``config_error`` alerts (an operator must change the setup), one per
finding per day, so the PR section is told once a day and nothing is lost if the relay is down.
"""

from __future__ import annotations

import hashlib
import logging

from airflow.sdk.exceptions import AirflowFailException

from koho.config import load_config
from koho.doctor.findings import Finding, Status, problems, summary
from koho.doctor.run import Probe, run_checks
from koho.notify.alerts import AlertSpec, notify_pending, record_alerts

log = logging.getLogger(__name__)


def alert_specs(findings: list[Finding], day: str) -> list[AlertSpec]:
    specs = []
    for finding in problems(findings):
        digest = hashlib.sha256(finding.message.encode()).hexdigest()[:16]
        specs.append(
            AlertSpec(
                kind="config_error",
                dedup_key=f"doctor:{finding.check}:{digest}:{day}",
                subject=f"診断 [{finding.check}] {finding.message}",
                severity="critical" if finding.status is Status.ERROR else "warning",
                detail={"check": finding.check},
            )
        )
    return specs


def run_doctor(probe: Probe | None = None) -> list[dict]:
    probe = probe or Probe(config=load_config())
    config = probe.config
    findings = run_checks(probe)
    text = summary(findings)
    log.info("%s", text)
    specs = alert_specs(findings, probe.clock().date().isoformat())
    if specs:
        try:
            ledger = probe.ledger()
            with ledger.session() as session:
                record_alerts(session, specs)
            if config.pr_email():
                city = config.policy.city_name if config.policy else "Koho"
                notify_pending(ledger, to=[config.pr_email()], city_name=city, kinds=["config_error"])
            else:
                log.error("no PR section mail address (policy.pr_department in departments.yaml): not mailed")
        except Exception as exc:  # a broken ledger or relay is itself in the findings; still fail below
            log.error("doctor findings could not be recorded or mailed: %s", type(exc).__name__)
    if any(f.status is Status.ERROR for f in findings):
        raise AirflowFailException(text)
    return [f.as_dict() for f in findings]
