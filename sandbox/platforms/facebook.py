"""Facebook Page (Graph API) as the sandbox serves it, under ``/facebook/{version}/...``.

Paths, parameters and bodies follow the Pages API reference: ``POST /{page-id}/feed`` answers
``{"id": "{page-id}_{post-id}"}``; ``POST /{page-id}/photos`` answers ``{"id", "post_id"}`` (or only
``{"id"}`` for an unpublished photo used as ``attached_media``); ``DELETE /{post-id}`` answers
``{"success": true}``; reads honour ``fields=`` including ``reactions.summary(...)``,
``comments.summary(...)`` and ``shares``. A Page access token is rate limited per Page by the
Business Use Case "pages" (4,800 calls per 24 h times engaged users; the sandbox assumes one),
reported in ``X-Business-Use-Case-Usage``; spent windows answer code 80001.

Posting the same message as the Page's latest post answers 506 "Duplicate status message", as
Facebook does; that is what makes a blind retry after a lost response visible.
"""

from __future__ import annotations

import json
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
    comments_on,
    field_name,
    folded,
    graph_app,
    graph_time,
    in_range,
    insights,
    not_found,
    parse_when,
    reply_count,
    select,
    split_fields,
    truthy,
)
from sandbox.state import Account, Comment, Post, SandboxState, utcnow

PREFIX = "/facebook"
PLATFORM = "facebook"

SHAPES: dict[str, ErrorShape] = {
    **BASE_SHAPES,
    # Page (and system user) tokens are throttled by the Pages Business Use Case: code 80001.
    "rate_limit": ErrorShape(
        80001, "(#80001) There have been too many calls to this Page account. Wait a bit and try again.", transient=True
    ),
    "too_long": ErrorShape(100, "(#100) Param message must be at most 63206 characters long"),
}

#: Post insights the sandbox knows. ``post_impressions*`` were retired in 2025 (Graph answers an
#: invalid-metric error for them), which is why Koho keeps the metric list in configuration.
POST_METRICS = ("post_media_view", "post_total_media_view_unique", "post_clicks", "post_reactions_like_total")

POST_DEFAULT_FIELDS = ("created_time", "message", "id")
PAGE_DEFAULT_FIELDS = ("name", "id")


def _page_url(account: Account) -> str:
    return f"https://www.facebook.com/{account.handle}"


def _post_url(post: Post) -> str:
    page, _, number = post.post_id.partition("_")
    return f"https://www.facebook.com/{page}/posts/{number}"


def _own_page(ctx: Ctx, node: str) -> Account:
    """The Page a write targets: only the token's own Page may be written to."""
    if node in ("me", ctx.account.account_id, ctx.account.handle):
        return ctx.account
    raise GraphError(
        "forbidden",
        403,
        "(#200) If posting to a page, requires both pages_read_engagement and pages_manage_posts as an admin "
        "with sufficient administrative permission",
        code=200,
    )


def _page_values(account: Account) -> dict[str, Any]:
    return {
        "id": account.account_id,
        "name": account.display_name or account.handle,
        "username": account.handle,
        "link": _page_url(account),
        "followers_count": account.followers,
        "fan_count": int(account.extra.get("fan_count", account.followers)),
        "verification_status": account.extra.get("verification_status", "not_verified"),
        "category": account.extra.get("category", "Government organization"),
    }


def _comment_id(comment: Comment) -> str:
    number = (comment.post_id or "0").rpartition("_")[2]
    return f"{number}_{comment.comment_id}"


def _comment_values(comment: Comment) -> dict[str, Any]:
    return {
        "id": _comment_id(comment),
        "message": comment.text,
        "created_time": graph_time(comment.created_at),
        "from": {"name": comment.author, "id": comment.extra.get("from_id", f"user.{comment.author}")},
        "permalink_url": f"https://www.facebook.com/{comment.post_id}?comment_id={comment.comment_id}",
    }


def _summary(spec: str, data: list, total: int) -> dict[str, Any]:
    """``reactions.summary(total_count).limit(0)``-style connections: the list (limited) and a summary."""
    limit = re.search(r"\.limit\((\d+)\)", spec)
    out: dict[str, Any] = {"data": data[: int(limit.group(1))] if limit else data}
    if ".summary(" in spec:
        out["summary"] = {"total_count": total}
    return out


def _post_values(state: SandboxState, post: Post, fields: str | None) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": post.post_id,
        "message": post.text or None,
        "created_time": graph_time(post.created_at),
        "permalink_url": _post_url(post),
        "link": post.link,
        "is_published": True,
        "full_picture": post.media[0] if post.media else None,
        "from": {"id": post.account_id},
    }
    reposts = post.metrics.get("reposts", 0)
    if reposts:
        values["shares"] = {"count": reposts}
    for spec in split_fields(fields):
        name = field_name(spec)
        if name == "reactions":
            values["reactions"] = _summary(spec, [], post.metrics.get("likes", 0))
        elif name == "comments":
            found = [_comment_values(c) for c in comments_on(state, PLATFORM, post.post_id)]
            values["comments"] = _summary(spec, found, reply_count(state, post))
    return select(values, fields, POST_DEFAULT_FIELDS)


def _find_comment(state: SandboxState, node: str) -> Comment | None:
    with state.lock:
        return next((c for c in state.comments.get(PLATFORM, []) if _comment_id(c) == node), None)


def build_router(state: SandboxState) -> GraphRouter:
    router = GraphRouter(PLATFORM, SHAPES, buc_usage("pages"))
    router.serve_debug_token(
        "PAGE",
        [
            "pages_show_list",
            "pages_read_engagement",
            "pages_manage_posts",
            "pages_read_user_content",
            "pages_manage_engagement",
            "read_insights",
        ],
    )

    @router.route("GET", "pages/search")
    async def search_pages(ctx: Ctx) -> dict:
        await ctx.gate("search")
        want = ctx.search_text()
        hits = [
            a
            for a in ctx.state.platform_accounts(PLATFORM)
            if want in folded(a.handle) or want in folded(a.display_name or "")
        ]
        hits.sort(key=lambda a: (-a.followers, a.account_id))
        return ctx.page([select(_page_values(a), ctx.fields(), ("id", "name", "link")) for a in hits])

    @router.route("POST", "{node}/feed")
    async def create_post(ctx: Ctx) -> dict:
        page = _own_page(ctx, ctx.args["node"])
        await ctx.gate("publish")
        message = str(ctx.params.get("message") or "")
        link = ctx.params.get("link") or None
        media = _attached_media(ctx)
        if not message and not link and not media:
            raise GraphError("invalid", 400, "(#100) Missing message or attachment", code=100)
        _check_duplicate(ctx.state, page, message)
        post = _new_post(ctx.state, page, message, link=link, media=media)
        return {"id": post.post_id}

    @router.route("POST", "{node}/photos")
    async def create_photo(ctx: Ctx) -> dict:
        page = _own_page(ctx, ctx.args["node"])
        await ctx.gate("publish")
        url = ctx.params.get("url")
        if not url:
            raise GraphError("invalid", 400, "(#324) Requires upload file", code=324)
        if not str(url).startswith(("http://", "https://")):
            raise GraphError("invalid", 400, "(#100) url should represent a valid URL", code=100)
        photo_id = ctx.state.next_id()
        photos = ctx.state.scratch.setdefault(PLATFORM, {}).setdefault("photos", {})
        published = truthy(ctx.params.get("published", "true"))
        photos[photo_id] = {"page": page.account_id, "url": url, "published": published}
        if not published:
            return {"id": photo_id}
        caption = str(ctx.params.get("caption") or ctx.params.get("message") or "")
        _check_duplicate(ctx.state, page, caption)
        post = _new_post(ctx.state, page, caption, media=[str(url)])
        photos[photo_id]["post_id"] = post.post_id
        return {"id": photo_id, "post_id": post.post_id}

    @router.route("GET", "{node}/published_posts")
    @router.route("GET", "{node}/posts")
    @router.route("GET", "{node}/feed")
    async def list_posts(ctx: Ctx) -> dict:
        page = _page_by_node(ctx, ctx.args["node"])
        ctx.owner_id = page.account_id
        await ctx.gate("read")
        return ctx.page([_post_values(ctx.state, p, ctx.fields()) for p in ctx.dated_posts(page.account_id)])

    @router.route("GET", "{node}/comments")
    async def list_comments(ctx: Ctx) -> dict:
        post = ctx.node_post()
        await ctx.gate("comments")
        found = comments_on(ctx.state, PLATFORM, post.post_id)
        since = parse_when(ctx.params.get("since"), "since")
        found = [c for c in found if in_range(c.created_at, since, None)]
        order = ctx.params.get("order", "chronological")
        if order == "reverse_chronological":
            found.reverse()
        elif order not in ("chronological", "ranked"):
            raise GraphError(
                "invalid",
                400,
                "(#100) param order must be one of {CHRONOLOGICAL, REVERSE_CHRONOLOGICAL, RANKED}",
                code=100,
            )
        rows = [select(_comment_values(c), ctx.fields(), ("created_time", "from", "message", "id")) for c in found]
        body = ctx.page(rows)
        if truthy(ctx.params.get("summary")):
            body["summary"] = {"order": order, "total_count": reply_count(ctx.state, post), "can_comment": True}
        return body

    @router.route("POST", "{node}/comments")
    async def comment(ctx: Ctx) -> dict:
        post = ctx.node_post("post")
        await ctx.gate("publish")
        message = str(ctx.params.get("message") or "")
        if not message:
            raise GraphError("invalid", 400, "(#100) Missing message or attachment", code=100)
        made = ctx.state.add_comment(
            Comment(
                platform=PLATFORM,
                comment_id=ctx.state.next_id(),
                post_id=post.post_id,
                account_id=post.account_id,
                author=ctx.account.display_name or ctx.account.handle,
                text=message,
                created_at=utcnow(),
                extra={"from_id": ctx.account.account_id},
            )
        )
        return {"id": _comment_id(made)}

    @router.route("GET", "{node}/insights")
    async def post_insights(ctx: Ctx) -> dict:
        post = await ctx.gate_post("metrics")
        views = post.metrics.get("impressions", 0)
        values = {
            "post_media_view": views,
            "post_total_media_view_unique": int(views * 0.8),
            "post_clicks": post.metrics.get("clicks", 0),
            "post_reactions_like_total": post.metrics.get("likes", 0),
        }
        return insights(post.post_id, ctx.params.get("metric"), values)

    @router.route("GET", "{node}")
    async def read_node(ctx: Ctx) -> dict:
        node = ctx.args["node"]
        if node == "me" or ctx.state.account(PLATFORM, node):
            page = _page_by_node(ctx, node)
            ctx.owner_id = page.account_id
            await ctx.gate(
                "verify"
                if node == "me"
                else "metrics"
                if ctx.field_names() & {"followers_count", "fan_count"}
                else "read"
            )
            return select(_page_values(page), ctx.fields(), PAGE_DEFAULT_FIELDS)
        post = ctx.state.post(PLATFORM, node)
        if post is not None:
            ctx.owner_id = post.account_id
            await ctx.gate("metrics" if ctx.field_names() & {"reactions", "comments", "shares"} else "read")
            return _post_values(ctx.state, post, ctx.fields())
        found = _find_comment(ctx.state, node)
        if found is not None:
            await ctx.gate("comments")
            return select(_comment_values(found), ctx.fields(), ("created_time", "from", "message", "id"))
        raise not_found(node)

    @router.route("DELETE", "{node}")
    async def delete_node(ctx: Ctx) -> dict:
        post = ctx.node_post("delete", own=True)
        await ctx.gate("delete")
        with ctx.state.lock:
            post.deleted = True
        return {"success": True}

    return router


def _page_by_node(ctx: Ctx, node: str) -> Account:
    if node == "me":
        return ctx.account
    page = ctx.state.account(PLATFORM, node) or ctx.state.account_by_handle(PLATFORM, node)
    if page is None:
        raise not_found(node)
    return page


def _attached_media(ctx: Ctx) -> list[str]:
    """Photos uploaded with ``published=false`` and attached as ``attached_media[i]={"media_fbid": id}``."""
    photos = ctx.state.scratch.setdefault(PLATFORM, {}).setdefault("photos", {})
    urls = []
    keys = sorted(
        (k for k in ctx.params if k.startswith("attached_media")), key=lambda k: int(re.sub(r"\D", "", k) or 0)
    )
    for key in keys:
        raw = ctx.params[key]
        try:
            fbid = str((json.loads(raw) if isinstance(raw, str) else raw)["media_fbid"])
        except (ValueError, KeyError, TypeError) as exc:
            raise GraphError(
                "invalid", 400, f"(#100) Param {key} must be a JSON object with media_fbid", code=100
            ) from exc
        photo = photos.get(fbid)
        if photo is None or photo["page"] != ctx.account.account_id:
            raise GraphError("invalid", 400, f"(#100) Invalid media_fbid: {fbid}", code=100)
        urls.append(photo["url"])
    return urls


def _check_duplicate(state: SandboxState, page: Account, message: str) -> None:
    """Facebook refuses a status identical to the Page's latest one (code 506)."""
    if not message:
        return
    latest = state.account_posts(PLATFORM, page.account_id)
    if latest and latest[0].text == message:
        raise GraphError(
            "duplicate",
            400,
            "Duplicate status message",
            code=506,
            subcode=1455006,
            type="FacebookApiException",
            user_title="Duplicate Status Update",
            user_msg="This status update is identical to the last one you posted. Try posting something "
            "different, or delete your previous update.",
        )


def _new_post(
    state: SandboxState, page: Account, message: str, *, link: str | None = None, media: list[str] | None = None
) -> Post:
    post = Post(
        platform=PLATFORM,
        post_id=f"{page.account_id}_{state.next_id()}",
        account_id=page.account_id,
        text=message,
        created_at=utcnow(),
        link=link,
        media=list(media or []),
    )
    return state.add_post(post)


def create_app(state: SandboxState) -> FastAPI:
    # Pages BUC: 4,800 calls per rolling 24 h times the Page's engaged users (at least one assumed).
    state.limits.default(PLATFORM, "calls", 4800, 86400)
    return graph_app("Facebook Graph API (sandbox)", build_router(state))
