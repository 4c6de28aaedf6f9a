"""The approval step of a calendar entry: Airflow's ``ApprovalOperator`` fed from the ledger.

The subject, body (each account's fitted text), deadline and approvers are only known when the
task runs (the entry may have changed since the DAG was parsed), so they are filled in at the
start of ``execute`` and the operator then waits as any human-in-the-loop task does: in the
``awaiting_input`` state, answered from the UI's Required Actions page or the REST API
(``PATCH /api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator


class EntryApprovalOperator(ApprovalOperator):
    """Ask a PR approver to approve one calendar entry revision, then apply the answer to the ledger.

    No answer by ``publish_at - deadline`` (see :func:`koho.calendar.approval.deadline_lead`)
    means "not published": the deliveries are parked, an ``approval_timeout`` alert is mailed and
    the task fails so the run shows red. A superseded revision is skipped without asking.
    """

    template_fields: Sequence[str] = (*ApprovalOperator.template_fields, "entry_id", "revision")
    ui_color = "#fff4d6"

    def __init__(self, *, entry_id: str, revision: int | str, **kwargs: Any) -> None:
        kwargs.setdefault("subject", "Koho: approve a calendar post")
        kwargs.setdefault("body", "The texts are filled in when the task runs.")
        super().__init__(**kwargs)
        self.entry_id = entry_id
        self.revision = revision

    # -- before waiting ---------------------------------------------------------------------

    def execute(self, context: Any) -> Any:
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from koho.calendar import approval
        from koho.ledger.db import Ledger
        from koho.timeutil import utcnow

        ledger = Ledger.from_airflow()
        request = approval.approval_request(ledger, str(self.entry_id), int(self.revision))
        if request is None:
            raise AirflowFailException(f"calendar entry '{self.entry_id}' does not exist in the ledger")
        if not request.current:
            raise AirflowSkipException(f"nothing to approve for {self.entry_id} r{self.revision}: {request.reason}")
        deadline = approval.approval_deadline(request.publish_at)
        remaining = deadline - utcnow()
        if remaining.total_seconds() <= 0:
            self._timeout(deadline)
        self.subject = request.subject
        self.body = request.body
        self.response_timeout = remaining
        self.assigned_users = approval.approvers(self._approvers_variable())
        self.log.info(
            "asking for approval of %s r%s until %s (%d text(s))",
            request.entry_id,
            request.revision,
            deadline.isoformat(),
            len(request.parts),
        )
        self._mail_request(context, request, deadline)
        return super().execute(context)

    @staticmethod
    def _approvers_variable() -> str | None:
        from airflow.sdk import Variable

        from koho.calendar.approval import APPROVERS_VARIABLE

        try:
            return Variable.get(APPROVERS_VARIABLE, default=None)
        except Exception:  # a missing variable backend must not stop the approval itself
            return None

    def _mail_request(self, context: Any, request: Any, deadline: datetime) -> None:
        """Tell the PR section an approval is waiting (with a link when [api] base_url is set)."""
        from koho.config import load_config
        from koho.ledger.db import Ledger
        from koho.notify import Message, city_name, max_message_bytes, pr_section, send

        config = load_config()
        to = pr_section(config)
        if not to:
            return
        try:
            link = self.generate_link_to_ui_from_context(context=context)
        except Exception:
            link = None
        try:
            message = Message(
                id=f"approval_request:{request.entry_id}:r{request.revision}",
                to=tuple(to),
                subject=f"[Koho] {request.subject}",
                template="mail/approval_request.html.j2",
                context={"request": request, "deadline": deadline, "link": link, "city_name": city_name(config)},
            )
            send(message, ledger=Ledger.from_airflow(), max_bytes=max_message_bytes(config))
        except Exception as exc:  # the request stands in the UI even if the relay is down
            self.log.warning("could not mail the approval request: %s", exc)

    # -- after the answer -------------------------------------------------------------------

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        from koho.calendar import approval
        from koho.ledger.db import Ledger

        if event.get("error_type") == "timeout":
            ledger = Ledger.from_airflow()
            request = approval.approval_request(ledger, str(self.entry_id), int(self.revision))
            deadline = approval.approval_deadline(request.publish_at) if request else None
            self._timeout(deadline)
        result = super().execute_complete(context=context, event=event)
        chosen = result["chosen_options"][0]
        by = result.get("responded_by_user") or {}
        who = by.get("name") or by.get("id") if isinstance(by, dict) else None
        decision = approval.apply_decision(
            Ledger.from_airflow(), str(self.entry_id), int(self.revision), approved=chosen == self.APPROVE, by=who
        )
        decision["responded_at"] = str(result.get("responded_at") or "")
        return decision

    def _timeout(self, deadline: datetime | None) -> None:
        from airflow.sdk.exceptions import AirflowFailException

        from koho.calendar import approval
        from koho.config import load_config
        from koho.ledger.db import Ledger
        from koho.notify import city_name, pr_section
        from koho.timeutil import utcnow

        config = load_config()
        outcome = approval.handle_timeout(
            Ledger.from_airflow(),
            str(self.entry_id),
            int(self.revision),
            deadline=deadline or utcnow(),
            to=pr_section(config),
            city_name=city_name(config),
        )
        if outcome["decision"] == "superseded":
            from airflow.sdk.exceptions import AirflowSkipException

            raise AirflowSkipException(f"{self.entry_id} r{self.revision} was superseded before the deadline")
        raise AirflowFailException(
            f"no approval for {self.entry_id} r{self.revision} before the deadline; the post was not published "
            f"({len(outcome['deliveries'])} delivery(ies) parked, the PR section was alerted)"
        )
