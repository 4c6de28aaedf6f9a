"""Thin operators over the platform hooks, one per operation; the platform is a parameter.

Each operator resolves its hook from :mod:`koho.platforms.registry`, calls one hook method (the
read operators through :mod:`koho.collection`: cursors, read quotas, a per-account report) and
pushes a JSON-safe result. All arguments are keyword-only and the ids, texts and cursors are
templated, so a city's own DAG maps them over its accounts (``docs/examples/own_dag.py``).

Errors follow the taxonomy: what retrying cannot fix (rejected content, an expired token, an
operation the platform lacks) fails the task without retries; rate limits (a read quota used up
too) and transient failures let Airflow's retries (with backoff) take over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from koho.platforms.errors import AuthExpired, NotSupported, PermanentlyRejected, PlatformError
from koho.platforms.registry import PLATFORMS, hook_for
from koho.platforms.types import OutgoingPost
from koho.timeutil import utcnow

if TYPE_CHECKING:  # the collection, config and ledger load when a task runs, not when a DAG is parsed
    from koho.collection.readers import AccountRef, Reader
    from koho.config.schema import ReadQuotaConfig
    from koho.ledger.db import Ledger


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def as_xcom(dataclass_value: Any) -> dict[str, Any]:
    return _jsonable(asdict(dataclass_value))


class PlatformOperator(BaseOperator):
    """Base: validates the platform early and maps taxonomy errors onto Airflow's retry semantics.

    ``account_id`` names the Koho account (accounts.yaml) the connection belongs to: every operator
    takes it, so one list of ``{platform, conn_id, account_id}`` maps any of them over the accounts
    (:func:`koho.collection.targets.collection_targets`); the ones that use it say how.
    """

    template_fields: Sequence[str] = ("conn_id", "account_id")
    ui_color = "#e8f1fb"

    def __init__(self, *, platform: str, conn_id: str, account_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if platform not in PLATFORMS:
            raise ValueError(f"unknown platform '{platform}'; expected one of {', '.join(PLATFORMS)}")
        self.platform = platform
        self.conn_id = conn_id
        self.account_id = account_id

    @property
    def hook(self):
        return hook_for(self.platform, self.conn_id)

    def execute(self, context: Any) -> Any:
        try:
            return self.run(self.hook, context)
        except (PermanentlyRejected, AuthExpired, NotSupported) as exc:
            raise AirflowFailException(str(exc)) from exc
        except PlatformError:
            raise

    def run(self, hook, context: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


def planned_created_at(context: Any) -> datetime:
    """The post's ``created_at``: the run's ``run_after``, the same for every try of the task.

    Platforms that reconcile by it (Bluesky) need one value per post across retries; the
    moment a try starts would differ on each.
    """
    dag_run = context.get("dag_run")
    moment = getattr(dag_run, "run_after", None) or getattr(dag_run, "logical_date", None)
    if moment is None:
        raise ValueError("the task context has no dag_run with run_after: the post's created_at cannot be fixed")
    return moment


class PublishPostOperator(PlatformOperator):
    """Publish one post exactly once (the idempotency key must be stable across retries).

    With ``account_id`` the account's posting budget from the configuration applies, in the same
    shared window as Koho's own deliveries to it, so a city's DAG and the calendar never exceed it
    together.
    """

    template_fields: Sequence[str] = (
        "conn_id",
        "account_id",
        "text",
        "link",
        "image_urls",
        "reply_to",
        "idempotency_key",
    )

    def __init__(
        self,
        *,
        text: str,
        idempotency_key: str,
        link: str | None = None,
        image_urls: Sequence[str] = (),
        reply_to: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not idempotency_key:
            raise ValueError("an idempotency key is required: it is what makes a retry safe")
        self.text, self.link, self.image_urls = text, link, list(image_urls)
        self.reply_to, self.idempotency_key = reply_to, idempotency_key

    @property
    def hook(self):
        budget = None
        if self.account_id:
            from koho.config import load_config

            budget = load_config().write_budget_for(self.account_id)
        if budget is None:
            return hook_for(self.platform, self.conn_id)
        from koho.platforms.base import WriteBudget

        return hook_for(self.platform, self.conn_id, write_budget=WriteBudget(budget.posts, budget.per_seconds))

    def run(self, hook, context: Any) -> dict[str, Any]:
        post = OutgoingPost(
            text=self.text,
            link=self.link,
            image_urls=tuple(self.image_urls),
            reply_to=self.reply_to,
            created_at=planned_created_at(context),
        )
        maybe_sent = (context.get("ti").try_number if context.get("ti") else 1) > 1
        published = hook.publish_once(post, idempotency_key=self.idempotency_key, maybe_sent_before=maybe_sent)
        self.log.info("%s: published %s %s", self.platform, published.remote_id, published.url or "")
        return as_xcom(published)


class DeletePostOperator(PlatformOperator):
    """Delete a post; where the API cannot, say so and name the post for staff to delete by hand."""

    template_fields: Sequence[str] = ("conn_id", "account_id", "remote_id")

    def __init__(self, *, remote_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.remote_id = remote_id

    def run(self, hook, context: Any) -> dict[str, Any]:
        if not hook.capabilities.delete:
            self.log.warning(
                "%s cannot delete through its API: delete post %s by hand in the app", self.platform, self.remote_id
            )
            return {"remote_id": self.remote_id, "deleted": False, "manual": True}
        hook.delete(self.remote_id)
        return {"remote_id": self.remote_id, "deleted": True, "manual": False}


class CollectOperator(PlatformOperator):
    """Base of the read operators: one account's read through :mod:`koho.collection`.

    The read spends the platform's read quota from policy.yaml (``read_quotas``) in the shared
    budget store, and the result says what was read, whether the read was complete and how much
    of the quota it used. With ``account_id`` (the Koho account, as in accounts.yaml) the cursor
    lives in the ledger: read from it, and moved in the same transaction as :meth:`store`, which
    the read side's DAGs override to keep the records. Without it, ``cursor`` is used and the new
    one is returned. ``push_records=False`` keeps the records out of XCom: residents' comments are
    personal data, and a DAG that stores them in the ledger has no reason to copy them there.
    """

    template_fields: Sequence[str] = ("conn_id", "account_id", "cursor")

    def __init__(self, *, cursor: str | None = None, push_records: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cursor, self.push_records = cursor, push_records

    def reader(self) -> Reader:  # pragma: no cover - abstract
        raise NotImplementedError

    def recent_post_ids(self, ledger: Ledger | None) -> tuple[str, ...]:
        """The posts the read is about (comments per post, post counters); none by default."""
        return ()

    @property
    def hook(self):
        from koho.collection.run import collection_hook

        return collection_hook(self.platform, self.conn_id)

    def store(self, session: Any, account: AccountRef, records: list[Any]) -> None:
        """Keep the records in the ledger transaction that moves the cursor; the default keeps none."""

    def run(self, hook, context: Any) -> dict[str, Any]:
        from koho.collection.readers import AccountRef
        from koho.collection.run import collect_account
        from koho.ledger.db import Ledger

        ledger = Ledger.from_airflow() if self.account_id else None
        account = AccountRef(
            self.account_id or self.conn_id, self.platform, self.conn_id, recent_post_ids=self.recent_post_ids(ledger)
        )
        quota = read_quota(self.platform)
        result = collect_account(
            ledger, account, self.reader(), hook=hook, quota=quota, store=self.store, cursor=self.cursor or None
        )
        if result.exception is not None:
            raise result.exception
        if result.stopped:
            self.log.warning("%s", result.stopped)
        self.log.info("%s: read %d %s (quota used: %s)", account.id, result.read, result.stream, result.quota)
        pushed = result.as_dict()
        if self.push_records:
            pushed["records"] = [as_xcom(record) for record in result.records]
        return pushed


def read_quota(platform: str) -> ReadQuotaConfig | None:
    """The platform's read quota from policy.yaml (none when the policy does not load or sets none)."""
    from koho.config import load_config

    policy = load_config().policy
    return policy.read_quotas.get(platform) if policy else None


class FetchPostMetricsOperator(CollectOperator):
    """Counters of posts: ``remote_ids``, else the account's posts of the last ``recent_days`` (ledger)."""

    template_fields: Sequence[str] = (*CollectOperator.template_fields, "remote_ids")

    def __init__(self, *, remote_ids: Sequence[str] = (), recent_days: int = 7, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.remote_ids, self.recent_days = list(remote_ids), recent_days

    def reader(self) -> Reader:
        from koho.collection.readers import PostMetricsReader

        return PostMetricsReader()

    def recent_post_ids(self, ledger: Ledger | None) -> tuple[str, ...]:
        if self.remote_ids or ledger is None or self.account_id is None:
            return tuple(self.remote_ids)
        from koho.ledger.collection import recent_post_ids

        with ledger.session(readonly=True) as session:
            return recent_post_ids(session, self.account_id, utcnow() - timedelta(days=self.recent_days))


class FetchAccountMetricsOperator(CollectOperator):
    """The account's counters now (followers, posts, views)."""

    def reader(self) -> Reader:
        from koho.collection.readers import AccountMetricsReader

        return AccountMetricsReader()


class FetchCommentsOperator(CollectOperator):
    """Replies, comments and mentions newer than the cursor, each once, catching up after an outage."""

    def reader(self) -> Reader:
        from koho.collection.readers import CommentsReader

        return CommentsReader()


class VerifyCredentialsOperator(PlatformOperator):
    def run(self, hook, context: Any) -> dict[str, Any]:
        return as_xcom(hook.verify_credentials())


class SearchAccountsOperator(CollectOperator):
    """Accounts whose names resemble ``query`` (impersonation checks)."""

    template_fields: Sequence[str] = (*CollectOperator.template_fields, "query")

    def __init__(self, *, query: str, limit: int = 20, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.query, self.limit = query, limit

    def reader(self) -> Reader:
        from koho.collection.readers import SearchAccountsReader

        return SearchAccountsReader([self.query], limit=self.limit)
