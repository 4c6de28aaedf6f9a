"""Instagram Graph API (content publishing) as the sandbox serves it, under ``/instagram/{version}/...``.

Publishing is two steps, as on Instagram: ``POST /{ig-user-id}/media`` makes a container (an
image, a REELS video, or a CAROUSEL of ``is_carousel_item`` children) and answers its id;
``GET /{container-id}?fields=status_code`` moves IN_PROGRESS -> FINISHED (images at once; videos
answer IN_PROGRESS to their first two status reads; an account's ``extra["container_polls"]`` sets
that number; a media URL whose file name starts with ``broken`` ends in ERROR, since the sandbox
downloads nothing); ``POST /{ig-user-id}/media_publish``
(``creation_id``) publishes a FINISHED container once and marks it PUBLISHED. Unpublished
containers EXPIRE after 24 h.

Limits as documented: caption at most 2,200 characters, 30 hashtags and 20 @mentions (error
36004 / subcode 2207010); a moving-24 h publishing quota read from
``GET /{ig-user-id}/content_publishing_limit`` (50 by default; the admin API's ``publish`` bucket
changes it), refused with code 9 / subcode 2207042. Calls are rate limited by the Instagram
Business Use Case, reported in ``X-Business-Use-Case-Usage``; spent windows answer code 80002.

Media cannot be deleted through this API (not generally available), so ``DELETE`` answers
"Unsupported delete request". Business Discovery
(``fields=business_discovery.username(name){...}``) looks up one account by exact username.
"""

from __future__ import annotations

import re
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
    buc_usage_header,
    comments_on,
    debug_token,
    field_name,
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

PREFIX = "/instagram"
PLATFORM = "instagram"

SHAPES: dict[str, ErrorShape] = {
    **BASE_SHAPES,
    "rate_limit": ErrorShape(80002, "(#80002) There have been too many calls to this Instagram account. "
                             "Wait a bit and try again.", transient=True),
    "too_long": ErrorShape(36004, "The caption was too long.", subcode=2207010),
}

CAPTION_MAX, HASHTAG_MAX, MENTION_MAX = 2200, 30, 20
CONTAINER_TTL = timedelta(hours=24)
DEFAULT_QUOTA = (50, 86400.0)  # the reference example's figure; Meta also quotes 25 and 100
MEDIA_TYPES = ("IMAGE", "REELS", "VIDEO", "CAROUSEL", "STORIES")
#: Media insights; ``impressions`` was retired in 2025 and now fails like any unknown metric.
MEDIA_METRICS = ("views", "reach", "likes", "comments", "shares", "saved", "total_interactions")
MEDIA_FIELDS = ("id",)


def _usage(ctx: Ctx, window: Window | None) -> dict[str, str]:
    return buc_usage_header(ctx.owner_id or ctx.account.account_id, "instagram", window)


def _containers(state: SandboxState) -> dict[str, dict[str, Any]]:
    return state.scratch.setdefault(PLATFORM, {}).setdefault("containers", {})


def _user_values(account: Account, media_count: int) -> dict[str, Any]:
    return {
        "id": account.account_id, "username": account.handle, "name": account.display_name or account.handle,
        "followers_count": account.followers, "follows_count": int(account.extra.get("follows_count", 0)),
        "media_count": media_count, "biography": account.extra.get("biography", ""),
        "profile_picture_url": f"https://scontent.cdninstagram.com/{account.handle}.jpg",
        "website": account.extra.get("website"),
    }


def _media_values(state: SandboxState, post: Post, handle: str) -> dict[str, Any]:
    return {
        "id": post.post_id, "caption": post.text or None, "timestamp": graph_time(post.created_at),
        "permalink": f"https://www.instagram.com/p/{shortcode(post.post_id)}/",
        "media_type": post.extra.get("media_type", "IMAGE"), "media_product_type": "FEED",
        "media_url": post.media[0] if post.media else None, "shortcode": shortcode(post.post_id),
        "username": handle, "owner": {"id": post.account_id},
        "like_count": post.metrics.get("likes", 0), "comments_count": reply_count(state, post),
    }


def _comment_values(comment: Comment) -> dict[str, Any]:
    return {
        "id": comment.comment_id, "text": comment.text, "timestamp": graph_time(comment.created_at),
        "username": comment.author, "like_count": int(comment.extra.get("like_count", 0)),
        "from": {"id": comment.extra.get("from_id", f"ig.{comment.author}"), "username": comment.author},
    }


def _check_caption(caption: str) -> None:
    """Instagram's caption limits, refused with its documented code and subcode."""
    problem = None
    if len(caption) > CAPTION_MAX:
        problem = f"The caption can be at most {CAPTION_MAX} characters."
    elif len(re.findall(r"#\w+", caption)) > HASHTAG_MAX:
        problem = f"The caption can contain at most {HASHTAG_MAX} hashtags."
    elif len(re.findall(r"@[\w.]+", caption)) > MENTION_MAX:
        problem = f"The caption can contain at most {MENTION_MAX} @ tags."
    if problem:
        raise GraphError("too_long", 400, "The caption was too long.", code=36004, subcode=2207010,
                         user_title="Caption too long", user_msg=problem)


def _check_url(url: Any, name: str) -> str:
    if not url:
        raise missing(name)
    if not str(url).startswith(("http://", "https://")):
        raise GraphError("invalid", 400, "Only photo or video can be accepted as media type.", code=9004,
                         subcode=2207052, user_title="Media download has failed.",
                         user_msg=f"The media could not be fetched from this uri: {url}")
    return str(url)


def _status(container: dict[str, Any], *, read: bool) -> str:
    """A container's status; a status read is what moves a processing container along."""
    if container["status_code"] == "IN_PROGRESS":
        if utcnow() - container["created_at"] > CONTAINER_TTL:
            container["status_code"] = "EXPIRED"
        elif container["pending"] <= 0:
            container["status_code"] = "ERROR" if container["broken"] else "FINISHED"
        elif read:
            container["pending"] -= 1
    elif container["status_code"] == "FINISHED" and utcnow() - container["created_at"] > CONTAINER_TTL:
        container["status_code"] = "EXPIRED"
    return container["status_code"]


def _new_container(ctx: Ctx, owner: Account) -> dict[str, Any]:
    params = ctx.params
    media_type = str(params.get("media_type") or ("CAROUSEL" if params.get("children") else "IMAGE")).upper()
    if media_type not in MEDIA_TYPES:
        raise GraphError("invalid", 400, f"The media type {media_type} is unknown.", code=100, subcode=2207023)
    child = truthy(params.get("is_carousel_item"))
    if media_type == "VIDEO" and not child:
        raise GraphError("invalid", 400, "The VIDEO media type is only for carousel items; use REELS.",
                         code=100, subcode=2207023)
    caption = str(params.get("caption") or "")
    _check_caption(caption)
    urls: list[str] = []
    children: list[str] = []
    if media_type == "CAROUSEL":
        children = [c.strip() for c in str(params.get("children") or "").split(",") if c.strip()]
        if not 2 <= len(children) <= 10:
            raise GraphError("invalid", 400, "(#100) A carousel needs between 2 and 10 children.", code=100)
        for cid in children:
            item = _containers(ctx.state).get(cid)
            if item is None or item["owner"] != owner.account_id or not item["child"]:
                raise GraphError("invalid", 400, f"(#100) The children parameter is invalid: {cid}", code=100)
            if _status(item, read=False) != "FINISHED":
                raise GraphError("invalid", 400, f"(#100) Carousel item {cid} is not ready", code=9007,
                                 subcode=2207027)
            urls.extend(item["urls"])
    elif media_type in ("REELS", "VIDEO"):
        urls = [_check_url(params.get("video_url"), "video_url")]
    else:
        urls = [_check_url(params.get("image_url"), "image_url")]
    video = media_type in ("REELS", "VIDEO")
    default_polls = 2 if video else 0
    return {
        "id": ctx.state.next_id(), "owner": owner.account_id, "media_type": media_type, "caption": caption,
        "urls": urls, "children": children, "child": child, "created_at": utcnow(),
        "status_code": "IN_PROGRESS", "pending": int(owner.extra.get("container_polls", default_polls)),
        "broken": any(u.rsplit("/", 1)[-1].startswith("broken") for u in urls), "media_id": None,
    }


def _own_user(ctx: Ctx, node: str) -> Account:
    if node in ("me", ctx.account.account_id):
        return ctx.account
    raise GraphError("forbidden", 403, "(#10) Application does not have permission for this action", code=10)


def build_router(state: SandboxState) -> GraphRouter:
    router = GraphRouter(PLATFORM, SHAPES, _usage)

    @router.route("GET", "debug_token")
    async def inspect_token(ctx: Ctx) -> dict:
        await ctx.gate("verify")
        return debug_token(ctx.state, PLATFORM, ctx.params.get("input_token"), "USER",
                           ["instagram_basic", "instagram_content_publish", "instagram_manage_comments",
                            "instagram_manage_insights", "pages_read_engagement"])

    @router.route("POST", "{node}/media")
    async def create_container(ctx: Ctx) -> dict:
        owner = _own_user(ctx, ctx.args["node"])
        await ctx.gate("publish")
        container = _new_container(ctx, owner)
        _containers(ctx.state)[container["id"]] = container
        return {"id": container["id"]}

    @router.route("POST", "{node}/media_publish")
    async def publish(ctx: Ctx) -> dict:
        owner = _own_user(ctx, ctx.args["node"])
        await ctx.gate("publish")
        creation_id = str(ctx.params.get("creation_id") or "")
        if not creation_id:
            raise missing("creation_id")
        container = _containers(ctx.state).get(creation_id)
        if container is None or container["owner"] != owner.account_id or container["child"]:
            raise GraphError("invalid", 400, f"(#100) Param creation_id must be a valid media container id: "
                             f"{creation_id}", code=100)
        _publishable(container)
        limit, seconds = quota(ctx.state, PLATFORM, "publish", DEFAULT_QUOTA)
        if published_within(ctx.state, PLATFORM, owner.account_id, seconds) >= limit:
            raise GraphError(
                "rate_limit", 400, "Application request limit reached", code=9, subcode=2207042,
                user_title="Cannot publish post",
                user_msg="You reached maximum number of posts that is allowed to be published by Content "
                         "Publishing API.",
            )
        post = ctx.state.add_post(Post(
            platform=PLATFORM, post_id=ctx.state.next_id(), account_id=owner.account_id,
            text=container["caption"], created_at=utcnow(), media=list(container["urls"]),
            extra={"container": creation_id, "media_type": container["media_type"]},
        ))
        container["status_code"], container["media_id"] = "PUBLISHED", post.post_id
        return {"id": post.post_id}

    @router.route("GET", "{node}/content_publishing_limit")
    async def publishing_limit(ctx: Ctx) -> dict:
        owner = _own_user(ctx, ctx.args["node"])
        await ctx.gate("read")
        limit, seconds = quota(ctx.state, PLATFORM, "publish", DEFAULT_QUOTA)
        row = {"quota_usage": published_within(ctx.state, PLATFORM, owner.account_id, seconds),
               "config": {"quota_total": limit, "quota_duration": int(seconds)}}
        wanted = [field_name(f) for f in split_fields(ctx.fields())] or ["quota_usage"]
        return {"data": [{k: v for k, v in row.items() if k in wanted}]}

    @router.route("GET", "{node}/media")
    async def list_media(ctx: Ctx) -> dict:
        owner = _own_user(ctx, ctx.args["node"])
        await ctx.gate("read")
        since = parse_when(ctx.params.get("since"), "since")
        until = parse_when(ctx.params.get("until"), "until")
        posts = [p for p in ctx.state.account_posts(PLATFORM, owner.account_id)
                 if in_range(p.created_at, since, until)]
        rows = [select(_media_values(ctx.state, p, owner.handle), ctx.fields(), MEDIA_FIELDS) for p in posts]
        return paginate(ctx.request, ctx.params, rows)

    @router.route("GET", "{node}/comments")
    async def list_comments(ctx: Ctx) -> dict:
        post = ctx.state.post(PLATFORM, ctx.args["node"])
        if post is None:
            raise not_found(ctx.args["node"])
        ctx.owner_id = post.account_id
        await ctx.gate("comments")
        rows = [select(_comment_values(c), ctx.fields(), ("timestamp", "text", "id"))
                for c in comments_on(ctx.state, PLATFORM, post.post_id)]
        return paginate(ctx.request, ctx.params, rows, default_limit=50)

    @router.route("GET", "{node}/insights")
    async def media_insights(ctx: Ctx) -> dict:
        post = ctx.state.post(PLATFORM, ctx.args["node"])
        if post is None:
            raise not_found(ctx.args["node"])
        ctx.owner_id = post.account_id
        await ctx.gate("metrics")
        m = post.metrics
        values = {"views": m.get("impressions", 0), "reach": int(m.get("impressions", 0) * 0.7),
                  "likes": m.get("likes", 0), "comments": reply_count(ctx.state, post),
                  "shares": m.get("reposts", 0), "saved": m.get("saves", 0)}
        values["total_interactions"] = values["likes"] + values["comments"] + values["shares"] + values["saved"]
        return insights(post.post_id, ctx.params.get("metric"), {k: values[k] for k in MEDIA_METRICS})

    @router.route("GET", "{node}")
    async def read_node(ctx: Ctx) -> dict:
        node = ctx.args["node"]
        container = _containers(ctx.state).get(node)
        if container is not None and container["owner"] == ctx.account.account_id:
            await ctx.gate("read")
            status = _status(container, read=True)
            values = {"id": node, "status_code": status,
                      "status": f"{status}: Error code 2207052" if status == "ERROR" else status}
            return select(values, ctx.fields(), ("id",))
        if node == "me" or node == ctx.account.account_id:
            return await _read_user(ctx)
        post = ctx.state.post(PLATFORM, node)
        if post is not None:
            ctx.owner_id = post.account_id
            wants = {field_name(f) for f in split_fields(ctx.fields())}
            await ctx.gate("metrics" if wants & {"like_count", "comments_count"} else "read")
            owner = ctx.state.account(PLATFORM, post.account_id)
            return select(_media_values(ctx.state, post, owner.handle if owner else ""), ctx.fields(), MEDIA_FIELDS)
        raise not_found(node)

    @router.route("DELETE", "{node}")
    async def delete_node(ctx: Ctx) -> dict:
        raise not_found(ctx.args["node"], "delete")

    return router


def _publishable(container: dict[str, Any]) -> None:
    status = _status(container, read=False)
    if status == "FINISHED":
        return
    if status == "IN_PROGRESS":
        raise GraphError("invalid", 400, "Media ID is not available", code=9007, subcode=2207027,
                         user_title="Media not ready for publishing",
                         user_msg="The media is not ready for publishing, please wait for a moment")
    if status == "EXPIRED":
        raise GraphError("invalid", 400, "The media you are trying to access has expired. Please try to upload "
                         "again.", code=-2, subcode=2207020)
    if status == "PUBLISHED":
        raise GraphError("invalid", 400, "(#100) This media container has already been published.", code=100)
    raise GraphError("invalid", 400, "Media upload has failed with error code 2207052", code=9004,
                     subcode=2207052, user_title="Media download has failed.")


async def _read_user(ctx: Ctx) -> dict:
    """The app user's own IG user node, or a Business Discovery look-up through it."""
    account = ctx.account
    discovery = next((f for f in split_fields(ctx.fields()) if field_name(f) == "business_discovery"), None)
    if discovery is not None:
        await ctx.gate("search")
        return {"business_discovery": _discover(ctx, discovery), "id": account.account_id}
    wants = {field_name(f) for f in split_fields(ctx.fields())}
    await ctx.gate("metrics" if "media_count" in wants else "verify")
    count = len(ctx.state.account_posts(PLATFORM, account.account_id))
    return select(_user_values(account, count), ctx.fields(), ("id",))


def _discover(ctx: Ctx, spec: str) -> dict[str, Any]:
    match = re.match(r"business_discovery\.username\(([^)]*)\)(?:\{(.*)\})?$", spec)
    if not match or not match.group(1).strip():
        raise GraphError("invalid", 400, "(#100) business_discovery needs username(<name>)", code=100)
    username = match.group(1).strip().lstrip("@")
    target = ctx.state.account_by_handle(PLATFORM, username)
    if target is None:
        raise GraphError("not_found", 400, "Invalid user id", code=110, subcode=2207013,
                         user_title="Cannot find User", user_msg=f"The user with username: {username} cannot be found.")
    count = len(ctx.state.account_posts(PLATFORM, target.account_id))
    values = _user_values(target, count)
    return select(values, match.group(2), ("id", "username"))


def create_app(state: SandboxState) -> FastAPI:
    # Instagram BUC: 4,800 calls per rolling 24 h times the account's impressions (one assumed).
    state.limits.default(PLATFORM, "calls", 4800, 86400)
    router = build_router(state)
    app = sub_app("Instagram Graph API (sandbox)", router.render)
    mount(app, router)
    return app
