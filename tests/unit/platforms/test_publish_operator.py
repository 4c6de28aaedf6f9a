"""PublishPostOperator gives every try of its task one ``created_at``: Bluesky mints the record key from it."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from koho.platforms.operators import PublishPostOperator, planned_created_at
from koho.platforms.types import PublishedPost

RUN_AFTER = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


class RecordingHook:
    """Stands in for a platform hook: records what ``publish_once`` was given."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def publish_once(self, post, **kwargs) -> PublishedPost:
        self.calls.append({"post": post, **kwargs})
        return PublishedPost("at://did:plc:x/app.bsky.feed.post/1", None, post.created_at)


def context(try_number: int) -> dict:
    return {"ti": SimpleNamespace(try_number=try_number), "dag_run": SimpleNamespace(run_after=RUN_AFTER)}


def test_every_try_sends_the_run_s_created_at():
    operator = PublishPostOperator(
        task_id="post", platform="bluesky", conn_id="bsky", text="お知らせ", idempotency_key="k-1"
    )
    hook = RecordingHook()
    operator.run(hook, context(1))
    operator.run(hook, context(2))
    assert [c["post"].created_at for c in hook.calls] == [RUN_AFTER, RUN_AFTER]
    assert [c["maybe_sent_before"] for c in hook.calls] == [False, True]


def test_a_context_without_a_run_is_a_clear_error():
    with pytest.raises(ValueError, match="created_at cannot be fixed"):
        planned_created_at({"ti": SimpleNamespace(try_number=1)})
