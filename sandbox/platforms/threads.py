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

from sandbox.common import sub_app
from sandbox.platforms._graph import (
    BASE_SHAPES,
    Ctx,
    ErrorShape,
    GraphError,
    GraphRouter,
    app_usage_header,
    comments_on,
    field_name,
    folded,
    graph_time,
    in_range,
    insights,
    missing,
    mount,
    not_found,
    paginate,
    parse_when,
    published_within,
    quota,
    reply_count,
    select,
    shortcode,
    split_fields,
    truthy,
)
from sandbox.ratelimit import Window
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
CONTAINER_TTL = timedelta(hours=24)
POST_QUOTA, REPLY_QUOTA, DELETE_QUOTA = (250, 86400.0), (1000, 86400.0), (100, 86400.0)
MEDIA_TYPES = ("TEXT", "IMAGE", "VIDEO", "CAROUSEL")
MEDIA_METRICS = ("views", "likes", "replies", "reposts", "quotes", "shares")
USER_METRICS = ("views", "likes", "replies", "reposts", "quotes", "clicks", "followers_count")
POST_FIELDS = ("id",)
REPLY_FIELDS = ("id", "text", "timestamp")


def _usage(ctx: Ctx, window: Window | None) -> dict[str, str]:
    return app_usage_header(window)


def _scratch(state: SandboxState) -> dict[str, Any]:
    return state.scratch.setdefault(PLATFORM, {})


def _containers(state: SandboxState) -> dict[str, dict[str, Any]]:
    return _scratch(state).setdefault("containers", {})


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
        "id": post.post_id, "media_product_type": "THREADS",
        "media_type": {"TEXT": "TEXT_POST", "CAROUSEL": "CAROUSEL_ALBUM"}.get(kind, kind),
        "media_url": post.media[0] if post.media else None, "permalink": _permalink(handle, post.post_id),
        "owner": {"id": post.account_id}, "username": handle, "text": post.text or None,
        "timestamp": graph_time(post.created_at), "shortcode": shortcode(post.post_id), "is_quote_post": False,
        "is_reply": post.reply_to is not None, "link_attachment_url": post.link,
        "has_replies": reply_count(state, post) > 0,
    }
    if post.reply_to:
        values["replied_to"] = {"id": post.reply_to}
        values["root_post"] = {"id": post.extra.get("root", post.reply_to)}
    return values


def _comment_values(comment: Comment, root: str) -> dict[str, Any]:
    return {
        "id": comment.comment_id, "text": comment.text, "timestamp": graph_time(comment.created_at),
        "username": comment.author, "permalink": _permalink(comment.author, comment.comment_id),
        "media_type": "TEXT_POST", "is_reply": True, "has_replies": False, "hide_status": "NOT_HUSHED",
        "replied_to": {"id": comment.post_id}, "root_post": {"id": root},
    }


def _user(ctx: Ctx, node: str) -> Account:
    if node in ("me", ctx.account.account_id):
        return ctx.account
    raise _error("(#10) Application does not have permission for this action", code=10, kind="forbidden")


def _status(container: dict[str, Any], *, read: bool) -> str:
    if container["status"] == "IN_PROGRESS":
        if utcnow() - container["created_at"] > CONTAINER_TTL:
            container["status"] = "EXPIRED"
        elif container["pending"] <= 0:
            container["status"] = "ERROR" if container["broken"] else "FINISHED"
        elif read:
            container["pending"] -= 1
    elif container["status"] == "FINISHED" and utcnow() - container["created_at"] > CONTAINER_TTL:
        container["status"] = "EXPIRED"
    return container["status"]


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


def _new_container(ctx: Ctx, owner: Account) -> dict[str, Any]:
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
    children = [c.strip() for c in str(params.get("children") or "").split(",") if c.strip()]
    if media_type == "CAROUSEL":
        if not 2 <= len(children) <= 20:
            raise _error("A carousel needs between 2 and 20 children")
        for cid in children:
            item = _containers(ctx.state).get(cid)
            if item is None or item["owner"] != owner.account_id or not item["child"]:
                raise _error(f"Param children contains an invalid container id: {cid}")
            urls.extend(item["urls"])
    reply_to = params.get("reply_to_id") or None
    root = None
    if reply_to:
        root = _target_exists(ctx.state, str(reply_to))
        if root is None:
            raise not_found(str(reply_to))
    return {
        "id": ctx.state.next_id(), "owner": owner.account_id, "media_type": media_type, "text": text,
        "urls": urls, "child": child, "reply_to": str(reply_to) if reply_to else None, "root": root,
        "link": params.get("link_attachment") or None, "created_at": utcnow(), "status": "IN_PROGRESS",
        "pending": int(owner.extra.get("container_polls", 2 if media_type == "VIDEO" else 0)),
        "broken": any(u.rsplit("/", 1)[-1].startswith("broken") for u in urls),
    }


def _publishable(container: dict[str, Any]) -> None:
    status = _status(container, read=False)
    if status == "FINISHED":
        return
    if status == "IN_PROGRESS":
        raise _error("The requested resource does not exist", subcode=4279009)
    if status == "PUBLISHED":
        raise _error("This media container has already been published.")
    if status == "EXPIRED":
        raise _error("The media container has expired; create a new one.")
    raise _error("The media container failed to process: UNKNOWN")


def _check_quota(ctx: Ctx, owner: Account, reply: bool) -> None:
    bucket, default = ("reply", REPLY_QUOTA) if reply else ("publish", POST_QUOTA)
    limit, seconds = quota(ctx.state, PLATFORM, bucket, default)
    used = published_within(ctx.state, PLATFORM, owner.account_id, seconds,
                            lambda p: (p.reply_to is not None) == reply)
    if used >= limit:
        what = "replies" if reply else "posts"
        raise _error(f"You have reached the limit of {limit} {what} per 24 hours.", code=9, kind="rate_limit")


def build_router(state: SandboxState) -> GraphRouter:
    router = GraphRouter(PLATFORM, SHAPES, _usage)

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
            "username": target.handle, "name": target.display_name or target.handle,
            "profile_picture_url": f"https://scontent.cdninstagram.com/{target.handle}.jpg",
            "biography": target.extra.get("biography", ""), "is_verified": bool(target.extra.get("is_verified")),
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
        query = str(ctx.params.get("q") or "").strip()
        if not query:
            raise missing("q")
        want = folded(query)
        with ctx.state.lock:
            posts = [p for p in ctx.state.posts.get(PLATFORM, {}).values() if not p.deleted and want in folded(p.text)]
        posts.sort(key=lambda p: p.created_at, reverse=True)
        rows = [select(_post_values(ctx.state, p), ctx.fields(), POST_FIELDS) for p in posts]
        return paginate(ctx.request, ctx.params, rows)

    @router.route("POST", "{node}/threads")
    async def create_container(ctx: Ctx) -> dict:
        owner = _user(ctx, ctx.args["node"])
        await ctx.gate("publish")
        container = _new_container(ctx, owner)
        _containers(ctx.state)[container["id"]] = container
        return {"id": container["id"]}

    @router.route("POST", "{node}/threads_publish")
    async def publish(ctx: Ctx) -> dict:
        owner = _user(ctx, ctx.args["node"])
        await ctx.gate("publish")
        creation_id = str(ctx.params.get("creation_id") or "")
        if not creation_id:
            raise missing("creation_id")
        container = _containers(ctx.state).get(creation_id)
        if container is None or container["owner"] != owner.account_id or container["child"]:
            raise _error("The requested resource does not exist", subcode=4279009, kind="not_found")
        _publishable(container)
        _check_quota(ctx, owner, reply=container["reply_to"] is not None)
        extra = {"container": creation_id, "media_type": container["media_type"]}
        if container["root"]:
            extra["root"] = container["root"]
        post = ctx.state.add_post(Post(
            platform=PLATFORM, post_id=ctx.state.next_id(), account_id=owner.account_id, text=container["text"],
            created_at=utcnow(), reply_to=container["reply_to"], link=container["link"],
            media=list(container["urls"]), extra=extra,
        ))
        container["status"], container["media_id"] = "PUBLISHED", post.post_id
        return {"id": post.post_id}

    @router.route("GET", "{node}/threads_publishing_limit")
    async def publishing_limit(ctx: Ctx) -> dict:
        owner = _user(ctx, ctx.args["node"])
        await ctx.gate("read")
        posts_total, posts_window = quota(ctx.state, PLATFORM, "publish", POST_QUOTA)
        replies_total, replies_window = quota(ctx.state, PLATFORM, "reply", REPLY_QUOTA)
        deletes_total, deletes_window = quota(ctx.state, PLATFORM, "delete", DELETE_QUOTA)
        row = {
            "quota_usage": published_within(ctx.state, PLATFORM, owner.account_id, posts_window,
                                            lambda p: p.reply_to is None),
            "config": {"quota_total": posts_total, "quota_duration": int(posts_window)},
            "reply_quota_usage": published_within(ctx.state, PLATFORM, owner.account_id, replies_window,
                                                  lambda p: p.reply_to is not None),
            "reply_config": {"quota_total": replies_total, "quota_duration": int(replies_window)},
            "delete_quota_usage": _deletes_within(ctx.state, owner.account_id, deletes_window),
            "delete_config": {"quota_total": deletes_total, "quota_duration": int(deletes_window)},
        }
        wanted = [field_name(f) for f in split_fields(ctx.fields())] or ["quota_usage"]
        return {"data": [{k: v for k, v in row.items() if k in wanted}]}

    @router.route("GET", "{node}/threads")
    @router.route("GET", "{node}/replies")
    async def list_posts(ctx: Ctx) -> dict:
        node = ctx.args["node"]
        edge = ctx.request.url.path.rstrip("/").rsplit("/", 1)[-1]
        if edge == "replies" and node not in ("me", ctx.account.account_id):
            return await _media_replies(ctx, nested=False)
        owner = _user(ctx, node)
        await ctx.gate("read")
        since = parse_when(ctx.params.get("since"), "since")
        until = parse_when(ctx.params.get("until"), "until")
        posts = [p for p in ctx.state.account_posts(PLATFORM, owner.account_id)
                 if in_range(p.created_at, since, until) and (p.reply_to is not None) == (edge == "replies")]
        rows = [select(_post_values(ctx.state, p), ctx.fields(), POST_FIELDS) for p in posts]
        return paginate(ctx.request, ctx.params, rows)

    @router.route("GET", "{node}/conversation")
    async def conversation(ctx: Ctx) -> dict:
        return await _media_replies(ctx, nested=True)

    @router.route("GET", "{node}/insights")
    async def media_insights(ctx: Ctx) -> dict:
        post = ctx.state.post(PLATFORM, ctx.args["node"])
        if post is None:
            raise not_found(ctx.args["node"])
        await ctx.gate("metrics")
        m = post.metrics
        values = {"views": m.get("impressions", 0), "likes": m.get("likes", 0),
                  "replies": reply_count(ctx.state, post), "reposts": m.get("reposts", 0),
                  "quotes": m.get("quotes", 0), "shares": m.get("shares", 0)}
        return insights(post.post_id, ctx.params.get("metric"), values)

    @router.route("GET", "{node}/threads_insights")
    async def user_insights(ctx: Ctx) -> dict:
        owner = _user(ctx, ctx.args["node"])
        await ctx.gate("metrics")
        requested = [m.strip() for m in str(ctx.params.get("metric") or "").split(",") if m.strip()]
        if not requested:
            raise missing("metric")
        posts = ctx.state.account_posts(PLATFORM, owner.account_id)
        totals = {"views": sum(p.metrics.get("impressions", 0) for p in posts),
                  "likes": sum(p.metrics.get("likes", 0) for p in posts),
                  "replies": sum(reply_count(ctx.state, p) for p in posts),
                  "reposts": sum(p.metrics.get("reposts", 0) for p in posts),
                  "quotes": sum(p.metrics.get("quotes", 0) for p in posts),
                  "clicks": sum(p.metrics.get("clicks", 0) for p in posts),
                  "followers_count": owner.followers}
        data = []
        for index, name in enumerate(requested):
            if name not in totals:
                raise _error(f"(#100) metric[{index}] must be one of the following values: {', '.join(USER_METRICS)}")
            period = "day"
            data.append({"name": name, "period": period, "title": name, "description": f"Total {name}",
                         "total_value": {"value": totals[name]},
                         "id": f"{owner.account_id}/insights/{name}/{period}"})
        return {"data": data}

    @router.route("GET", "{node}")
    async def read_node(ctx: Ctx) -> dict:
        node = ctx.args["node"]
        container = _containers(ctx.state).get(node)
        if container is not None and container["owner"] == ctx.account.account_id:
            await ctx.gate("read")
            status = _status(container, read=True)
            values = {"id": node, "status": status,
                      "error_message": "UNKNOWN" if status == "ERROR" else None}
            return select(values, ctx.fields(), ("id",))
        if node in ("me", ctx.account.account_id):
            await ctx.gate("verify")
            account = ctx.account
            values = {"id": account.account_id, "username": account.handle,
                      "name": account.display_name or account.handle,
                      "threads_profile_picture_url": f"https://scontent.cdninstagram.com/{account.handle}.jpg",
                      "threads_biography": account.extra.get("biography", ""),
                      "is_verified": bool(account.extra.get("is_verified"))}
            return select(values, ctx.fields(), ("id",))
        post = ctx.state.post(PLATFORM, node)
        if post is not None:
            await ctx.gate("read")
            return select(_post_values(ctx.state, post), ctx.fields(), POST_FIELDS)
        raise not_found(node)

    @router.route("DELETE", "{node}")
    async def delete_node(ctx: Ctx) -> dict:
        node = ctx.args["node"]
        post = ctx.state.post(PLATFORM, node)
        if post is None or post.account_id != ctx.account.account_id:
            raise not_found(node, "delete")
        await ctx.gate("delete")
        limit, seconds = quota(ctx.state, PLATFORM, "delete", DELETE_QUOTA)
        if _deletes_within(ctx.state, ctx.account.account_id, seconds) >= limit:
            raise _error(f"You have reached the limit of {limit} deletes per 24 hours.", code=9, kind="rate_limit")
        with ctx.state.lock:
            post.deleted = True
            _scratch(ctx.state).setdefault("deletes", []).append((ctx.account.account_id, utcnow()))
        return {"success": True, "deleted_id": post.post_id}

    return router


async def _media_replies(ctx: Ctx, *, nested: bool) -> dict:
    post = ctx.state.post(PLATFORM, ctx.args["node"])
    if post is None:
        raise not_found(ctx.args["node"])
    await ctx.gate("comments")
    rows = _replies_to(ctx.state, post.post_id, post.post_id, nested=nested)
    if truthy(ctx.params.get("reverse", "true")):
        rows.reverse()
    rows = [select(r, ctx.fields(), REPLY_FIELDS) for r in rows]
    return paginate(ctx.request, ctx.params, rows)


def _deletes_within(state: SandboxState, account_id: str, seconds: float) -> int:
    since = utcnow() - timedelta(seconds=seconds)
    return sum(1 for who, when in _scratch(state).get("deletes", []) if who == account_id and when >= since)


def create_app(state: SandboxState) -> FastAPI:
    # Threads: 4,800 calls per 24 h per app-user pair times impressions (impressions count at least 10).
    state.limits.default(PLATFORM, "calls", 48000, 86400)
    router = build_router(state)
    app = sub_app("Threads API (sandbox)", router.render)
    mount(app, router)
    return app
