"""Content publishing as Instagram and Threads share it: media containers and moving-window quotas.

Both publish in two steps: a container is IN_PROGRESS until processing ends (FINISHED or ERROR),
EXPIRED 24 h after creation unless published, and published once (then PUBLISHED). The hosts
differ in what a container holds, how a status read names its fields and which errors they answer;
:class:`Containers` takes those as parameters and keeps the life cycle in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sandbox.platforms._graph import Ctx, GraphError, missing, select
from sandbox.state import Account, Post, SandboxState, utcnow

CONTAINER_TTL = timedelta(hours=24)

Container = dict[str, Any]


@dataclass(frozen=True)
class Containers:
    """One host's media containers: where they live and the errors it answers about them."""

    platform: str
    #: The key a container keeps its status under: the host's own name for the field.
    status_key: str
    #: The fields a status read answers for a container in this status.
    status_fields: Callable[[str], dict[str, Any]]
    #: The error for a ``creation_id`` that is no publishable container of the user's.
    unknown: Callable[[str], GraphError]
    #: The error for publishing a container in this (not FINISHED) status.
    refusal: Callable[[str], GraphError]

    def store(self, state: SandboxState) -> dict[str, Container]:
        return state.scratch.setdefault(self.platform, {}).setdefault("containers", {})

    def status(self, container: Container, *, read: bool) -> str:
        """A container's status; a status read is what moves a processing container along."""
        key, age = self.status_key, utcnow() - container["created_at"]
        if container[key] == "IN_PROGRESS":
            if age > CONTAINER_TTL:
                container[key] = "EXPIRED"
            elif container["pending"] <= 0:
                container[key] = "ERROR" if container["broken"] else "FINISHED"
            elif read:
                container["pending"] -= 1
        elif container[key] == "FINISHED" and age > CONTAINER_TTL:
            container[key] = "EXPIRED"
        return container[key]

    def new(
        self,
        state: SandboxState,
        owner: Account,
        media_type: str,
        urls: list[str],
        *,
        child: bool,
        video: bool,
        **fields: Any,
    ) -> Container:
        """A processing container; a video takes ``container_polls`` status reads (two unless the account says)."""
        return {
            "id": state.next_id(),
            "owner": owner.account_id,
            "media_type": media_type,
            "urls": urls,
            "child": child,
            "created_at": utcnow(),
            self.status_key: "IN_PROGRESS",
            "pending": int(owner.extra.get("container_polls", 2 if video else 0)),
            # The sandbox downloads nothing: a file named broken* is how a test asks for a failed upload.
            "broken": any(u.rsplit("/", 1)[-1].startswith("broken") for u in urls),
            "media_id": None,
            **fields,
        }

    async def create(self, ctx: Ctx, owner: Account, build: Callable[[Ctx, Account], Container]) -> dict[str, str]:
        """The create edge: count the call, build the container from the request and keep it."""
        await ctx.gate("publish")
        container = build(ctx, owner)
        self.store(ctx.state)[container["id"]] = container
        return {"id": container["id"]}

    def child(self, state: SandboxState, owner: Account, container_id: str) -> Container | None:
        """``owner``'s carousel item ``container_id``, or None when it is no such thing."""
        item = self.store(state).get(container_id)
        if item is None or item["owner"] != owner.account_id or not item["child"]:
            return None
        return item

    async def read(self, ctx: Ctx, node: str) -> dict[str, Any] | None:
        """``GET /{container-id}`` for the token's own container, as a client polls it; None for any other node."""
        container = self.store(ctx.state).get(node)
        if container is None or container["owner"] != ctx.account.account_id:
            return None
        await ctx.gate("read")
        return select({"id": node, **self.status_fields(self.status(container, read=True))}, ctx.fields(), ("id",))

    async def claim(self, ctx: Ctx, owner: Account) -> Container:
        """The publish edge's checks: the ``creation_id`` names ``owner``'s top-level container, and it is FINISHED."""
        await ctx.gate("publish")
        creation_id = str(ctx.params.get("creation_id") or "")
        if not creation_id:
            raise missing("creation_id")
        container = self.store(ctx.state).get(creation_id)
        if container is None or container["owner"] != owner.account_id or container["child"]:
            raise self.unknown(creation_id)
        current = self.status(container, read=False)
        if current != "FINISHED":
            raise self.refusal(current)
        return container

    def publish(
        self, state: SandboxState, container: Container, *, extra: dict[str, Any] | None = None, **post_fields: Any
    ) -> dict[str, str]:
        """Make the post a claimed container stands for; the container answers PUBLISHED from then on."""
        post = state.add_post(
            Post(
                platform=self.platform,
                post_id=state.next_id(),
                account_id=container["owner"],
                text=container["text"],
                created_at=utcnow(),
                media=list(container["urls"]),
                extra={"container": container["id"], "media_type": container["media_type"], **(extra or {})},
                **post_fields,
            )
        )
        container[self.status_key], container["media_id"] = "PUBLISHED", post.post_id
        return {"id": post.post_id}


def published_within(
    state: SandboxState,
    platform: str,
    account_id: str,
    seconds: float,
    predicate: Callable[[Post], bool] = lambda p: True,
) -> int:
    """Posts the account published in the last ``seconds`` (deleted ones count too: quotas do)."""
    since = utcnow() - timedelta(seconds=seconds)
    return sum(
        1
        for p in state.account_posts(platform, account_id, include_deleted=True)
        if p.created_at >= since and predicate(p)
    )


def quota(state: SandboxState, platform: str, bucket: str, default: tuple[int, float]) -> tuple[int, float]:
    """A publishing quota (limit, seconds); the admin API can shrink it like any rate-limit bucket."""
    return state.limits.settings(platform, bucket) or default


def quota_use(
    state: SandboxState,
    platform: str,
    account_id: str,
    bucket: str,
    default: tuple[int, float],
    predicate: Callable[[Post], bool] = lambda p: True,
) -> tuple[int, int, float]:
    """(used, limit, seconds) of a publishing quota: what the limit edge shows is what publishing enforces."""
    limit, seconds = quota(state, platform, bucket, default)
    return published_within(state, platform, account_id, seconds, predicate), limit, seconds


def limit_row(used: int, limit: int, seconds: float, prefix: str = "") -> dict[str, Any]:
    """One quota as a ``*_publishing_limit`` row shows it: ``{prefix}quota_usage`` and ``{prefix}config``."""
    return {f"{prefix}quota_usage": used, f"{prefix}config": {"quota_total": limit, "quota_duration": int(seconds)}}


def limit_answer(ctx: Ctx, row: dict[str, Any]) -> dict[str, Any]:
    """The ``*_publishing_limit`` answer: one row, cut to the requested fields (``quota_usage`` by default)."""
    wanted = ctx.field_names() or {"quota_usage"}
    return {"data": [{k: v for k, v in row.items() if k in wanted}]}
