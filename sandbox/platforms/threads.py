"""Threads API as the sandbox serves it, under ``/threads/{version}/...`` (real host graph.threads.net).

Publishing is two steps: ``POST /{threads-user-id}/threads`` (``media_type`` TEXT / IMAGE /
VIDEO / CAROUSEL, ``text``, ``image_url``, ``reply_to_id``, ``link_attachment``) makes a container;
``GET /{container-id}?fields=status,error_message`` reports IN_PROGRESS / FINISHED / ERROR /
EXPIRED / PUBLISHED; ``POST /{threads-user-id}/threads_publish`` (``creation_id``) publishes it once.
``me`` works wherever a user id does. Text is at most 500 characters.

Quotas per profile in a moving 24 h, read from ``GET /{id}/threads_publishing_limit``: 250
posts, 1,000 replies, 100 deletes (admin ``publish``/``reply``/``delete`` buckets change them).
``DELETE /{threads-media-id}`` answers ``{"success": true, "deleted_id"}``. Reads: own posts
``/{id}/threads``, own replies ``/{id}/replies``, a post's ``/replies`` and ``/conversation``,
``/{media}/insights`` (views, likes, replies, reposts, quotes, shares), ``/{id}/threads_insights``
(followers_count), ``/profile_lookup?username=`` (Profile Discovery) and ``/keyword_search``.
Calls count against the app-user pair's allowance (4,800 x impressions per 24 h, impressions at
least 10), reported in ``X-App-Usage``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import FastAPI

from sandbox.platforms._graph import (
    BASE_SHAPES,
    Ctx,
    ErrorShape,
    GraphError,
    GraphRouter,
    app_usage,
    comma_list,
    comments_on,
    folded,
    graph_app,
    graph_time,
    insights,
    missing,
    not_found,
    reply_count,
    select,
    shortcode,
    truthy,
)
from sandbox.platforms._publishing import Container, Containers, limit_answer, limit_row, quota, quota_use
from sandbox.state import Account, Comment, Post, SandboxState, utcnow

PREFIX = "/threads"
PLATFORM = "threads"
TYPE = "THApiException"

SHAPES: dict[str, ErrorShape] = {
    **BASE_SHAPES,
    "too_long": ErrorShape(100, "Param text must be at most 500 characters long.", type=TYPE),
    "invalid": ErrorShape(100, "Invalid parameter", type=TYPE),
}

TEXT_MAX = 500
POST_QUOTA, REPLY_QUOTA, DELETE_QUOTA = (250, 86400.0), (1000, 86400.0), (100, 86400.0)
MEDIA_TYPES = ("TEXT", "IMAGE", "VIDEO", "CAROUSEL")
MEDIA_METRICS = ("views", "likes", "replies", "reposts", "quotes", "shares")
USER_METRICS = ("views", "likes", "replies", "reposts", "quotes", "clicks", "followers_count")
POST_FIELDS = ("id",)
REPLY_FIELDS = ("id", "text", "timestamp")


def _scratch(state: SandboxState) -> dict[str, Any]:
    return state.scratch.setdefault(PLATFORM, {})


def _error(message: str, *, code: int = 100, subcode: int | None = None, kind: str = "invalid") -> GraphError:
    return GraphError(kind, 400, message, code=code, subcode=subcode, type=TYPE)


def _permalink(handle: str, post_id: str) -> str:
    return f"https://www.threads.com/@{handle}/post/{shortcode(post_id)}"


def _handle(state: SandboxState, account_id: str) -> str:
    account = state.account(PLATFORM, account_id)
    return account.handle if account else account_id


def _post_values(state: SandboxState, post: Post) -> dict[str, Any]:
    handle = _handle(state, post.account_id)
    kind = post.extra.get("media_type", "TEXT")
    values: dict[str, Any] = {
        "id": post.post_id,
        "media_product_type": "THREADS",
        "media_type": {"TEXT": "TEXT_POST", "CAROUSEL": "CAROUSEL_ALBUM"}.get(kind, kind),
        "media_url": post.media[0] if post.media else None,
        "permalink": _permalink(handle, post.post_id),
        "owner": {"id": post.account_id},
        "username": handle,
        "text": post.text or None,
        "timestamp": graph_time(post.created_at),
        "shortcode": shortcode(post.post_id),
        "is_quote_post": False,
        "is_reply": post.reply_to is not None,
        "link_attachment_url": post.link,
        "has_replies": reply_count(state, post) > 0,
    }
    if post.reply_to:
        values["replied_to"] = {"id": post.reply_to}
        values["root_post"] = {"id": post.extra.get("root", post.reply_to)}
    return values


def _comment_values(comment: Comment, root: str) -> dict[str, Any]:
    return {
        "id": comment.comment_id,
        "text": comment.text,
        "timestamp": graph_time(comment.created_at),
        "username": comment.author,
        "permalink": _permalink(comment.author, comment.comment_id),
        "media_type": "TEXT_POST",
        "is_reply": True,
        "has_replies": False,
        "hide_status": "NOT_HUSHED",
        "replied_to": {"id": comment.post_id},
        "root_post": {"id": root},
    }


def _user(ctx: Ctx, node: str) -> Account:
    if ctx.is_self(node):
        return ctx.account
    raise _error("(#10) Application does not have permission for this action", code=10, kind="forbidden")


def _replies_to(state: SandboxState, media_id: str, root: str, *, nested: bool) -> list[dict[str, Any]]:
    """Replies to ``media_id`` (residents' comments and the account's own reply posts), oldest first."""
    found: list[tuple[Any, dict[str, Any]]] = []
    for comment in comments_on(state, PLATFORM, media_id):
        found.append((comment.created_at, _comment_values(comment, root)))
    with state.lock:
        own = [p for p in state.posts.get(PLATFORM, {}).values() if p.reply_to == media_id and not p.deleted]
    for post in own:
        found.append((post.created_at, _post_values(state, post)))
        if nested:
            found.extend((r["timestamp"], r) for r in _replies_to(state, post.post_id, root, nested=True))
    found.sort(key=lambda pair: str(pair[1]["timestamp"]))
    return [row for _, row in found]


def _target_exists(state: SandboxState, node: str) -> str | None:
    """The root post of ``node`` when it is a post or a resident's reply, else None."""
    post = state.post(PLATFORM, node)
    if post is not None:
        return post.extra.get("root", post.reply_to or post.post_id) if post.reply_to else post.post_id
    with state.lock:
        comment = next((c for c in state.comments.get(PLATFORM, []) if c.comment_id == node), None)
    return comment.post_id if comment else None


def _new_container(ctx: Ctx, owner: Account) -> Container:
    params = ctx.params
    media_type = str(params.get("media_type") or "TEXT").upper()
    if media_type not in MEDIA_TYPES:
        raise _error(f"Param media_type must be one of {{{', '.join(MEDIA_TYPES)}}}")
    text = str(params.get("text") or "")
    if len(text) > TEXT_MAX:
        raise _error(f"Param text must be at most {TEXT_MAX} characters long.", kind="too_long")
    child = truthy(params.get("is_carousel_item"))
    urls: list[str] = []
    if media_type == "TEXT" and not text:
        raise missing("text")
    if media_type in ("IMAGE", "VIDEO"):
        name = "image_url" if media_type == "IMAGE" else "video_url"
        url = params.get(name)
        if not url:
            raise missing(name)
        if not str(url).startswith(("http://", "https://")):
            raise _error(f"Param {name} must be a valid URL")
        urls = [str(url)]
    children = comma_list(params.get("children"))
    if media_type == "CAROUSEL":
        if not 2 <= len(children) <= 20:
            raise _error("A carousel needs between 2 and 20 children")
        for cid in children:
            item = CONTAINERS.child(ctx.state, owner, cid)
            if item is None:
                raise _error(f"Param children contains an invalid container id: {cid}")
            urls.extend(item["urls"])
    reply_to = params.get("reply_to_id") or None
    root = None
    if reply_to:
        root = _target_exists(ctx.state, str(reply_to))
        if root is None:
            raise not_found(str(reply_to))
    return CONTAINERS.new(
        ctx.state,
        owner,
        media_type,
        urls,
        child=child,
        video=media_type == "VIDEO",
        text=text,
        reply_to=str(reply_to) if reply_to else None,
        root=root,
        link=params.get("link_attachment") or None,
    )


def _unknown_container(creation_id: str) -> GraphError:
    return _error("The requested resource does not exist", subcode=4279009, kind="not_found")


def _refusal(current: str) -> GraphError:
    """Why a container in status ``current`` cannot be published, as Threads words it."""
    if current == "IN_PROGRESS":
        return _error("The requested resource does not exist", subcode=4279009)
    if current == "PUBLISHED":
        return _error("This media container has already been published.")
    if current == "EXPIRED":
        return _error("The media container has expired; create a new one.")
    return _error("The media container failed to process: UNKNOWN")


def _status_fields(current: str) -> dict[str, Any]:
    """``status``, and ``error_message`` only for a container that failed."""
    return {"status": current, "error_message": "UNKNOWN" if current == "ERROR" else None}


CONTAINERS = Containers(PLATFORM, "status", _status_fields, _unknown_container, _refusal)


def _is_reply(post: Post) -> bool:
    return post.reply_to is not None


def _is_top_level(post: Post) -> bool:
    return post.reply_to is None


def _check_quota(ctx: Ctx, owner: Account, reply: bool) -> None:
    bucket, default = ("reply", REPLY_QUOTA) if reply else ("publish", POST_QUOTA)
    used, limit, _ = quota_use(
        ctx.state, PLATFORM, owner.account_id, bucket, default, _is_reply if reply else _is_top_level
    )
    if used >= limit:
        what = "replies" if reply else "posts"
        raise _error(f"You have reached the limit of {limit} {what} per 24 hours.", code=9, kind="rate_limit")


def build_router(state: SandboxState) -> GraphRouter:
    router = GraphRouter(PLATFORM, SHAPES, app_usage)

    @router.route("GET", "profile_lookup")
    async def profile_lookup(ctx: Ctx) -> dict:
        await ctx.gate("search")
        username = str(ctx.params.get("username") or "").lstrip("@")
        if not username:
            raise missing("username")
        target = ctx.state.account_by_handle(PLATFORM, username)
        if target is None:
            raise _error(f"The user with username {username} cannot be found", subcode=33, kind="not_found")
        posts = ctx.state.account_posts(PLATFORM, target.account_id)
        values = {
            "username": target.handle,
            "name": target.display_name or target.handle,
            "profile_picture_url": f"https://scontent.cdninstagram.com/{target.handle}.jpg",
            "biography": target.extra.get("biography", ""),
            "is_verified": bool(target.extra.get("is_verified")),
            "follower_count": target.followers,
            "likes_count": sum(p.metrics.get("likes", 0) for p in posts),
            "quotes_count": sum(p.metrics.get("quotes", 0) for p in posts),
            "replies_count": sum(reply_count(ctx.state, p) for p in posts),
            "reposts_count": sum(p.metrics.get("reposts", 0) for p in posts),
            "views_count": sum(p.metrics.get("impressions", 0) for p in posts),
        }
        return select(values, ctx.fields(), ("username", "name"))

    @router.route("GET", "keyword_search")
    async def keyword_search(ctx: Ctx) -> dict:
        await ctx.gate("search")
        want = ctx.search_text()
        with ctx.state.lock:
            posts = [p for p in ctx.state.posts.get(PLATFORM, {}).values() if not p.deleted and want in folded(p.text)]
        posts.sort(key=lambda p: p.created_at, reverse=True)
        return ctx.page([select(_post_values(ctx.state, p), ctx.fields(), POST_FIELDS) for p in posts])

    @router.route("POST", "{node}/threads")
    async def create_container(ctx: Ctx) -> dict:
        return await CONTAINERS.create(ctx, _user(ctx, ctx.args["node"]), _new_container)

    @router.route("POST", "{node}/threads_publish")
    async def publish(ctx: Ctx) -> dict:
        owner = _user(ctx, ctx.args["node"])
        container = await CONTAINERS.claim(ctx, owner)
        _check_quota(ctx, owner, reply=container["reply_to"] is not None)
        return CONTAINERS.publish(
            ctx.state,
            container,
            reply_to=container["reply_to"],
            link=container["link"],
            extra={"root": container["root"]} if container["root"] else None,
        )

    @router.route("GET", "{node}/threads_publishing_limit")
    async def publishing_limit(ctx: Ctx) -> dict:
        owner = _user(ctx, ctx.args["node"])
        await ctx.gate("read")
        posts = quota_use(ctx.state, PLATFORM, owner.account_id, "publish", POST_QUOTA, _is_top_level)
        replies = quota_use(ctx.state, PLATFORM, owner.account_id, "reply", REPLY_QUOTA, _is_reply)
        deletes = _delete_use(ctx.state, owner.account_id)
        return limit_answer(
            ctx, {**limit_row(*posts), **limit_row(*replies, prefix="reply_"), **limit_row(*deletes, prefix="delete_")}
        )

    @router.route("GET", "{node}/threads")
    @router.route("GET", "{node}/replies")
    async def list_posts(ctx: Ctx) -> dict:
        node = ctx.args["node"]
        edge = ctx.request.url.path.rstrip("/").rsplit("/", 1)[-1]
        if edge == "replies" and not ctx.is_self(node):
            return await _media_replies(ctx, nested=False)
        owner = _user(ctx, node)
        await ctx.gate("read")
        posts = ctx.dated_posts(owner.account_id, _is_reply if edge == "replies" else _is_top_level)
        rows = [select(_post_values(ctx.state, p), ctx.fields(), POST_FIELDS) for p in posts]
        return ctx.page(rows)

    @router.route("GET", "{node}/conversation")
    async def conversation(ctx: Ctx) -> dict:
        return await _media_replies(ctx, nested=True)

    @router.route("GET", "{node}/insights")
    async def media_insights(ctx: Ctx) -> dict:
        post = ctx.node_post()
        await ctx.gate("metrics")
        m = post.metrics
        values = {
            "views": m.get("impressions", 0),
            "likes": m.get("likes", 0),
            "replies": reply_count(ctx.state, post),
            "reposts": m.get("reposts", 0),
            "quotes": m.get("quotes", 0),
            "shares": m.get("shares", 0),
        }
        return insights(post.post_id, ctx.params.get("metric"), values)

    @router.route("GET", "{node}/threads_insights")
    async def user_insights(ctx: Ctx) -> dict:
        owner = _user(ctx, ctx.args["node"])
        await ctx.gate("metrics")
        requested = comma_list(ctx.params.get("metric"))
        if not requested:
            raise missing("metric")
        posts = ctx.state.account_posts(PLATFORM, owner.account_id)
        totals = {
            "views": sum(p.metrics.get("impressions", 0) for p in posts),
            "likes": sum(p.metrics.get("likes", 0) for p in posts),
            "replies": sum(reply_count(ctx.state, p) for p in posts),
            "reposts": sum(p.metrics.get("reposts", 0) for p in posts),
            "quotes": sum(p.metrics.get("quotes", 0) for p in posts),
            "clicks": sum(p.metrics.get("clicks", 0) for p in posts),
            "followers_count": owner.followers,
        }
        data = []
        for index, name in enumerate(requested):
            if name not in totals:
                raise _error(f"(#100) metric[{index}] must be one of the following values: {', '.join(USER_METRICS)}")
            period = "day"
            data.append(
                {
                    "name": name,
                    "period": period,
                    "title": name,
                    "description": f"Total {name}",
                    "total_value": {"value": totals[name]},
                    "id": f"{owner.account_id}/insights/{name}/{period}",
                }
            )
        return {"data": data}

    @router.route("GET", "{node}")
    async def read_node(ctx: Ctx) -> dict:
        node = ctx.args["node"]
        container = await CONTAINERS.read(ctx, node)
        if container is not None:
            return container
        if ctx.is_self(node):
            await ctx.gate("verify")
            account = ctx.account
            values = {
                "id": account.account_id,
                "username": account.handle,
                "name": account.display_name or account.handle,
                "threads_profile_picture_url": f"https://scontent.cdninstagram.com/{account.handle}.jpg",
                "threads_biography": account.extra.get("biography", ""),
                "is_verified": bool(account.extra.get("is_verified")),
            }
            return select(values, ctx.fields(), ("id",))
        post = ctx.state.post(PLATFORM, node)
        if post is not None:
            await ctx.gate("read")
            return select(_post_values(ctx.state, post), ctx.fields(), POST_FIELDS)
        raise not_found(node)

    @router.route("DELETE", "{node}")
    async def delete_node(ctx: Ctx) -> dict:
        post = ctx.node_post("delete", own=True)
        await ctx.gate("delete")
        used, limit, _ = _delete_use(ctx.state, ctx.account.account_id)
        if used >= limit:
            raise _error(f"You have reached the limit of {limit} deletes per 24 hours.", code=9, kind="rate_limit")
        with ctx.state.lock:
            post.deleted = True
            _scratch(ctx.state).setdefault("deletes", []).append((ctx.account.account_id, utcnow()))
        return {"success": True, "deleted_id": post.post_id}

    return router


async def _media_replies(ctx: Ctx, *, nested: bool) -> dict:
    post = ctx.node_post()
    await ctx.gate("comments")
    rows = _replies_to(ctx.state, post.post_id, post.post_id, nested=nested)
    if truthy(ctx.params.get("reverse", "true")):
        rows.reverse()
    return ctx.page([select(r, ctx.fields(), REPLY_FIELDS) for r in rows])


def _delete_use(state: SandboxState, account_id: str) -> tuple[int, int, float]:
    """(used, limit, seconds) of the delete quota, counted from the deletes the router records with their time."""
    limit, seconds = quota(state, PLATFORM, "delete", DELETE_QUOTA)
    since = utcnow() - timedelta(seconds=seconds)
    used = sum(1 for who, when in _scratch(state).get("deletes", []) if who == account_id and when >= since)
    return used, limit, seconds


def create_app(state: SandboxState) -> FastAPI:
    # Threads: 4,800 calls per 24 h per app-user pair times impressions (impressions count at least 10).
    state.limits.default(PLATFORM, "calls", 48000, 86400)
    return graph_app("Threads API (sandbox)", build_router(state))
