"""Thin operators over the platform hooks, one per operation; the platform is a parameter.

Each operator resolves its hook from :mod:`koho.platforms.registry`, calls one hook method and
pushes a JSON-safe result. Errors follow the taxonomy: what retrying cannot fix (rejected
content, an expired token, an operation the platform lacks) fails the task without retries;
rate limits and transient failures let Airflow's retries (with backoff) take over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from koho.platforms.errors import AuthExpired, NotSupported, PermanentlyRejected, PlatformError
from koho.platforms.registry import PLATFORMS, hook_for
from koho.platforms.types import OutgoingPost


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
    """Base: validates the platform early and maps taxonomy errors onto Airflow's retry semantics."""

    template_fields: Sequence[str] = ("conn_id",)
    ui_color = "#e8f1fb"

    def __init__(self, *, platform: str, conn_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if platform not in PLATFORMS:
            raise ValueError(f"unknown platform '{platform}'; expected one of {', '.join(PLATFORMS)}")
        self.platform = platform
        self.conn_id = conn_id

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
    """Publish one post exactly once (the idempotency key must be stable across retries)."""

    template_fields: Sequence[str] = ("conn_id", "text", "link", "image_urls", "reply_to", "idempotency_key")

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

    template_fields: Sequence[str] = ("conn_id", "remote_id")

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


class FetchPostMetricsOperator(PlatformOperator):
    template_fields: Sequence[str] = ("conn_id", "remote_ids")

    def __init__(self, *, remote_ids: Sequence[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.remote_ids = list(remote_ids)

    def run(self, hook, context: Any) -> list[dict[str, Any]]:
        return [as_xcom(hook.post_metrics(remote_id)) for remote_id in self.remote_ids]


class FetchAccountMetricsOperator(PlatformOperator):
    def run(self, hook, context: Any) -> dict[str, Any]:
        return as_xcom(hook.account_metrics())


class FetchCommentsOperator(PlatformOperator):
    """Comments newer than ``cursor``; returns them with the cursor to store for next time."""

    template_fields: Sequence[str] = ("conn_id", "cursor")

    def __init__(self, *, cursor: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cursor = cursor

    def run(self, hook, context: Any) -> dict[str, Any]:
        return as_xcom(hook.comments_since(self.cursor or None))


class VerifyCredentialsOperator(PlatformOperator):
    def run(self, hook, context: Any) -> dict[str, Any]:
        return as_xcom(hook.verify_credentials())


class SearchAccountsOperator(PlatformOperator):
    """Accounts whose names resemble ``query`` (impersonation checks)."""

    template_fields: Sequence[str] = ("conn_id", "query")

    def __init__(self, *, query: str, limit: int = 20, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.query, self.limit = query, limit

    def run(self, hook, context: Any) -> list[dict[str, Any]]:
        return [as_xcom(found) for found in hook.search_accounts(self.query, limit=self.limit)]
