"""
### Emergency broadcast (緊急配信)

For crisis officers only (role **KohoCrisis**; anyone else's trigger is refused by Airflow). One
form, every official account and the city website, in seconds, no caps and no quiet hours.

* **The same words everywhere.** The message is never reworded or shortened by wording rules:
  split into a thread of the original text only where a platform's hard limit forces it, or cut
  at a sentence with "…" and a link to the full text on the city website (website included in the
  targets). Type the confirmation word exactly: it guards against a mistaken trigger.
* **Ahead of everything.** One task in its own pool (`koho_emergency`) with the highest priority
  posts to all accounts in parallel, through the same exactly-once sender as every post; accounts
  that fail for a passing reason (rate limits, 5xx) are tried again at once with a short backoff.
* **Account of it within seconds.** The task returns and logs one line per account — published
  with its link, or failed with the reason — and mails it to the crisis and PR addresses.
* **Follow-ups.** Give *follow_up_of* (the entry id in the summary) and *kind* update (続報) or
  all_clear (解除): the post answers the original on platforms with replies and is a new post
  elsewhere; an all-clear takes the website's emergency banner down.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import dag, get_current_context, task

from koho.access import EMERGENCY_ACCESS
from koho.config.posting import settings_for_parse
from koho.dag_defaults import DEFAULT_ARGS, START_DATE
from koho.posting.params import emergency_params

#: Above anything the calendar can queue: with the "absolute" weight rule, this task's weight is
#: exactly this number, not a sum over downstream tasks.
PRIORITY = 1000


@dag(
    dag_id="emergency_broadcast",
    dag_display_name="緊急配信 / Emergency broadcast",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=8,
    default_args=DEFAULT_ARGS,
    params=emergency_params(settings_for_parse().emergency_confirmation),
    access_control=EMERGENCY_ACCESS,
    tags=["koho", "emergency", "forms"],
    doc_md=__doc__,
)
def emergency_broadcast():
    @task(
        pool="koho_emergency",
        priority_weight=PRIORITY,
        weight_rule="absolute",
        retries=3,
        retry_delay=timedelta(seconds=2),
        retry_exponential_backoff=True,
        max_retry_delay=timedelta(seconds=20),
    )
    def broadcast() -> dict:
        from koho.posting import tasks
        from koho.posting.params import param_values

        context = get_current_context()
        dag_run = context["dag_run"]
        form = param_values(context["params"])
        return tasks.broadcast(
            form,
            run_id=context["run_id"],
            run_after=getattr(dag_run, "run_after", None),
            triggered_by=tasks.triggering_user(context),
            try_number=getattr(context["ti"], "try_number", 1) or 1,
            dag_id=context["dag"].dag_id,
        )

    @task(priority_weight=PRIORITY, weight_rule="absolute", pool="koho_emergency", retries=1)
    def verdict(result: dict) -> dict:
        from koho.posting import tasks

        return tasks.verdict(result)

    verdict(broadcast())


emergency_broadcast()
