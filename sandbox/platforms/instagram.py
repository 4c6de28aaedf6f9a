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
from typing import Any

from fastapi import FastAPI

from sandbox.platforms._graph import (
    BASE_SHAPES,
    Ctx,
    ErrorShape,
    GraphError,
    GraphRouter,
    buc_usage,
    comma_list,
    comments_on,
    field_name,
    graph_app,
    graph_time,
    insights,
    missing,
    not_found,
    reply_count,
    select,
    shortcode,
    split_fields,
    truthy,
)
from sandbox.platforms._publishing import Container, Containers, limit_answer, limit_row, quota_use
from sandbox.state import Account, Comment, Post, SandboxState

PREFIX = "/instagram"
PLATFORM = "instagram"

SHAPES: dict[str, ErrorShape] = {
    **BASE_SHAPES,
    "rate_limit": ErrorShape(
        80002,
        "(#80002) There have been too many calls to this Instagram account. Wait a bit and try again.",
        transient=True,
    ),
    "too_long": ErrorShape(36004, "The caption was too long.", subcode=2207010),
}

CAPTION_MAX, HASHTAG_MAX, MENTION_MAX = 2200, 30, 20
DEFAULT_QUOTA = (50, 86400.0)  # the reference example's figure; Meta also quotes 25 and 100
MEDIA_TYPES = ("IMAGE", "REELS", "VIDEO", "CAROUSEL", "STORIES")
#: Media insights; ``impressions`` was retired in 2025 and now fails like any unknown metric.
MEDIA_METRICS = ("views", "reach", "likes", "comments", "shares", "saved", "total_interactions")
MEDIA_FIELDS = ("id",)


def _user_values(account: Account, media_count: int) -> dict[str, Any]:
    return {
        "id": account.account_id,
        "username": account.handle,
        "name": account.display_name or account.handle,
        "followers_count": account.followers,
        "follows_count": int(account.extra.get("follows_count", 0)),
        "media_count": media_count,
        "biography": account.extra.get("biography", ""),
        "profile_picture_url": f"https://scontent.cdninstagram.com/{account.handle}.jpg",
        "website": account.extra.get("website"),
    }


def _media_values(state: SandboxState, post: Post, handle: str) -> dict[str, Any]:
    return {
        "id": post.post_id,
        "caption": post.text or None,
        "timestamp": graph_time(post.created_at),
        "permalink": f"https://www.instagram.com/p/{shortcode(post.post_id)}/",
        "media_type": post.extra.get("media_type", "IMAGE"),
        "media_product_type": "FEED",
        "media_url": post.media[0] if post.media else None,
        "shortcode": shortcode(post.post_id),
        "username": handle,
        "owner": {"id": post.account_id},
        "like_count": post.metrics.get("likes", 0),
        "comments_count": reply_count(state, post),
    }


def _comment_values(comment: Comment) -> dict[str, Any]:
    return {
        "id": comment.comment_id,
        "text": comment.text,
        "timestamp": graph_time(comment.created_at),
        "username": comment.author,
        "like_count": int(comment.extra.get("like_count", 0)),
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
        raise GraphError(
            "too_long",
            400,
            "The caption was too long.",
            code=36004,
            subcode=2207010,
            user_title="Caption too long",
            user_msg=problem,
        )


def _check_url(url: Any, name: str) -> str:
    if not url:
        raise missing(name)
    if not str(url).startswith(("http://", "https://")):
        raise GraphError(
            "invalid",
            400,
            "Only photo or video can be accepted as media type.",
            code=9004,
            subcode=2207052,
            user_title="Media download has failed.",
            user_msg=f"The media could not be fetched from this uri: {url}",
        )
    return str(url)


def _new_container(ctx: Ctx, owner: Account) -> Container:
    params = ctx.params
    media_type = str(params.get("media_type") or ("CAROUSEL" if params.get("children") else "IMAGE")).upper()
    if media_type not in MEDIA_TYPES:
        raise GraphError("invalid", 400, f"The media type {media_type} is unknown.", code=100, subcode=2207023)
    child = truthy(params.get("is_carousel_item"))
    if media_type == "VIDEO" and not child:
        raise GraphError(
            "invalid", 400, "The VIDEO media type is only for carousel items; use REELS.", code=100, subcode=2207023
        )
    caption = str(params.get("caption") or "")
    _check_caption(caption)
    urls: list[str] = []
    children: list[str] = []
    if media_type == "CAROUSEL":
        children = comma_list(params.get("children"))
        if not 2 <= len(children) <= 10:
            raise GraphError("invalid", 400, "(#100) A carousel needs between 2 and 10 children.", code=100)
        for cid in children:
            item = CONTAINERS.child(ctx.state, owner, cid)
            if item is None:
                raise GraphError("invalid", 400, f"(#100) The children parameter is invalid: {cid}", code=100)
            if CONTAINERS.status(item, read=False) != "FINISHED":
                raise GraphError("invalid", 400, f"(#100) Carousel item {cid} is not ready", code=9007, subcode=2207027)
            urls.extend(item["urls"])
    elif media_type in ("REELS", "VIDEO"):
        urls = [_check_url(params.get("video_url"), "video_url")]
    else:
        urls = [_check_url(params.get("image_url"), "image_url")]
    return CONTAINERS.new(
        ctx.state,
        owner,
        media_type,
        urls,
        child=child,
        video=media_type in ("REELS", "VIDEO"),
        text=caption,
        children=children,
    )


def _own_user(ctx: Ctx, node: str) -> Account:
    if ctx.is_self(node):
        return ctx.account
    raise GraphError("forbidden", 403, "(#10) Application does not have permission for this action", code=10)


def _unknown_container(creation_id: str) -> GraphError:
    return GraphError(
        "invalid", 400, f"(#100) Param creation_id must be a valid media container id: {creation_id}", code=100
    )


def _refusal(current: str) -> GraphError:
    """Why a container in status ``current`` cannot be published, in Instagram's codes."""
    if current == "IN_PROGRESS":
        return GraphError(
            "invalid",
            400,
            "Media ID is not available",
            code=9007,
            subcode=2207027,
            user_title="Media not ready for publishing",
            user_msg="The media is not ready for publishing, please wait for a moment",
        )
    if current == "EXPIRED":
        return GraphError(
            "invalid",
            400,
            "The media you are trying to access has expired. Please try to upload again.",
            code=-2,
            subcode=2207020,
        )
    if current == "PUBLISHED":
        return GraphError("invalid", 400, "(#100) This media container has already been published.", code=100)
    return GraphError(
        "invalid",
        400,
        "Media upload has failed with error code 2207052",
        code=9004,
        subcode=2207052,
        user_title="Media download has failed.",
    )


def _status_fields(current: str) -> dict[str, str]:
    """``status_code``, and ``status`` that names the error code a failed upload ended with."""
    return {"status_code": current, "status": f"{current}: Error code 2207052" if current == "ERROR" else current}


CONTAINERS = Containers(PLATFORM, "status_code", _status_fields, _unknown_container, _refusal)


def build_router(state: SandboxState) -> GraphRouter:
    router = GraphRouter(PLATFORM, SHAPES, buc_usage("instagram"))
    router.serve_debug_token(
        "USER",
        [
            "instagram_basic",
            "instagram_content_publish",
            "instagram_manage_comments",
            "instagram_manage_insights",
            "pages_read_engagement",
        ],
    )

    @router.route("POST", "{node}/media")
    async def create_container(ctx: Ctx) -> dict:
        return await CONTAINERS.create(ctx, _own_user(ctx, ctx.args["node"]), _new_container)

    @router.route("POST", "{node}/media_publish")
    async def publish(ctx: Ctx) -> dict:
        owner = _own_user(ctx, ctx.args["node"])
        container = await CONTAINERS.claim(ctx, owner)
        used, limit, _ = quota_use(ctx.state, PLATFORM, owner.account_id, "publish", DEFAULT_QUOTA)
        if used >= limit:
            raise GraphError(
                "rate_limit",
                400,
                "Application request limit reached",
                code=9,
                subcode=2207042,
                user_title="Cannot publish post",
                user_msg="You reached maximum number of posts that is allowed to be published by Content "
                "Publishing API.",
            )
        return CONTAINERS.publish(ctx.state, container)

    @router.route("GET", "{node}/content_publishing_limit")
    async def publishing_limit(ctx: Ctx) -> dict:
        owner = _own_user(ctx, ctx.args["node"])
        await ctx.gate("read")
        used = quota_use(ctx.state, PLATFORM, owner.account_id, "publish", DEFAULT_QUOTA)
        return limit_answer(ctx, limit_row(*used))

    @router.route("GET", "{node}/media")
    async def list_media(ctx: Ctx) -> dict:
        owner = _own_user(ctx, ctx.args["node"])
        await ctx.gate("read")
        rows = [
            select(_media_values(ctx.state, p, owner.handle), ctx.fields(), MEDIA_FIELDS)
            for p in ctx.dated_posts(owner.account_id)
        ]
        return ctx.page(rows)

    @router.route("GET", "{node}/comments")
    async def list_comments(ctx: Ctx) -> dict:
        post = await ctx.gate_post("comments")
        rows = [
            select(_comment_values(c), ctx.fields(), ("timestamp", "text", "id"))
            for c in comments_on(ctx.state, PLATFORM, post.post_id)
        ]
        return ctx.page(rows, default_limit=50)

    @router.route("GET", "{node}/insights")
    async def media_insights(ctx: Ctx) -> dict:
        post = await ctx.gate_post("metrics")
        m = post.metrics
        values = {
            "views": m.get("impressions", 0),
            "reach": int(m.get("impressions", 0) * 0.7),
            "likes": m.get("likes", 0),
            "comments": reply_count(ctx.state, post),
            "shares": m.get("reposts", 0),
            "saved": m.get("saves", 0),
        }
        values["total_interactions"] = values["likes"] + values["comments"] + values["shares"] + values["saved"]
        return insights(post.post_id, ctx.params.get("metric"), {k: values[k] for k in MEDIA_METRICS})

    @router.route("GET", "{node}")
    async def read_node(ctx: Ctx) -> dict:
        node = ctx.args["node"]
        container = await CONTAINERS.read(ctx, node)
        if container is not None:
            return container
        if ctx.is_self(node):
            return await _read_user(ctx)
        post = ctx.state.post(PLATFORM, node)
        if post is not None:
            ctx.owner_id = post.account_id
            await ctx.gate("metrics" if ctx.field_names() & {"like_count", "comments_count"} else "read")
            owner = ctx.state.account(PLATFORM, post.account_id)
            return select(_media_values(ctx.state, post, owner.handle if owner else ""), ctx.fields(), MEDIA_FIELDS)
        raise not_found(node)

    @router.route("DELETE", "{node}")
    async def delete_node(ctx: Ctx) -> dict:
        raise not_found(ctx.args["node"], "delete")

    return router


async def _read_user(ctx: Ctx) -> dict:
    """The app user's own IG user node, or a Business Discovery look-up through it."""
    account = ctx.account
    discovery = next((f for f in split_fields(ctx.fields()) if field_name(f) == "business_discovery"), None)
    if discovery is not None:
        await ctx.gate("search")
        return {"business_discovery": _discover(ctx, discovery), "id": account.account_id}
    await ctx.gate("metrics" if "media_count" in ctx.field_names() else "verify")
    count = len(ctx.state.account_posts(PLATFORM, account.account_id))
    return select(_user_values(account, count), ctx.fields(), ("id",))


def _discover(ctx: Ctx, spec: str) -> dict[str, Any]:
    match = re.match(r"business_discovery\.username\(([^)]*)\)(?:\{(.*)\})?$", spec)
    if not match or not match.group(1).strip():
        raise GraphError("invalid", 400, "(#100) business_discovery needs username(<name>)", code=100)
    username = match.group(1).strip().lstrip("@")
    target = ctx.state.account_by_handle(PLATFORM, username)
    if target is None:
        raise GraphError(
            "not_found",
            400,
            "Invalid user id",
            code=110,
            subcode=2207013,
            user_title="Cannot find User",
            user_msg=f"The user with username: {username} cannot be found.",
        )
    count = len(ctx.state.account_posts(PLATFORM, target.account_id))
    values = _user_values(target, count)
    return select(values, match.group(2), ("id", "username"))


def create_app(state: SandboxState) -> FastAPI:
    # Instagram BUC: 4,800 calls per rolling 24 h times the account's impressions (one assumed).
    state.limits.default(PLATFORM, "calls", 4800, 86400)
    return graph_app("Instagram Graph API (sandbox)", build_router(state))
