"""What the three Meta routers (Facebook Page, Instagram, Threads) share: the Graph API's habits.

All three speak the same dialect: a version prefix (``/v21.0/``, Threads ``/v1.0/``), nodes and
edges (``/{node-id}/{edge}``), the token in ``Authorization: Bearer``/``OAuth`` or in an
``access_token`` parameter, POST parameters as form fields, ``fields=`` selection, cursor paging
``{"data": [...], "paging": {"cursors": {"before", "after"}, "next"}}``, the error body
``{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}`` and usage headers
(``X-App-Usage`` / ``X-Business-Use-Case-Usage``) instead of remaining/reset counters.

A router declares its routes on a :class:`GraphRouter`; the router does the version check,
authentication, error rendering and usage headers once, and each handler only gates, applies and
returns its JSON body. Instagram's and Threads' two-step publishing is in ``_publishing``.
"""

from __future__ import annotations

import base64
import json
import math
import random
import re
import string
import time
import unicodedata
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from sandbox.common import SandboxError, gate, lost_response, state_of, sub_app
from sandbox.faults import Fault
from sandbox.ratelimit import Window
from sandbox.state import Account, Comment, Post, SandboxState, utcnow

VERSION = re.compile(r"^v\d+\.\d+$")


# ----------------------------------------------------------------------------- errors


@dataclass
class GraphError(SandboxError):
    """An error with an explicit Graph code; routers raise it for validation, quotas, lookups."""

    code: int = 100
    subcode: int | None = None
    type: str = "OAuthException"
    user_title: str | None = None
    user_msg: str | None = None
    transient: bool = False


@dataclass(frozen=True)
class ErrorShape:
    """How a fault kind looks on one platform (codes from the Graph API error reference)."""

    code: int
    message: str
    status: int = 400
    subcode: int | None = None
    type: str = "OAuthException"
    transient: bool = False
    user_title: str | None = None
    user_msg: str | None = None


#: The shapes shared by every Graph host; a router overrides the entries that differ.
BASE_SHAPES: dict[str, ErrorShape] = {
    "invalid_token": ErrorShape(190, "Invalid OAuth access token - Cannot parse access token"),
    "expired_token": ErrorShape(190, "Error validating access token: Session has expired.", subcode=463),
    "server_error": ErrorShape(
        2, "An unexpected error has occurred. Please retry your request later.", status=503, transient=True
    ),
    "rate_limit": ErrorShape(4, "(#4) Application request limit reached", transient=True),
    "duplicate": ErrorShape(
        506,
        "Duplicate status message",
        subcode=1455006,
        type="FacebookApiException",
        user_title="Duplicate Status Update",
        user_msg="This status update is identical to the last one you posted. Try posting something different.",
    ),
    "invalid": ErrorShape(100, "(#100) Invalid parameter"),
    "too_long": ErrorShape(100, "(#100) Param message is too long"),
    "not_found": ErrorShape(
        100,
        "Unsupported get request. Object does not exist, cannot be loaded due to missing permissions, "
        "or does not support this operation.",
        subcode=33,
        type="GraphMethodException",
    ),
    "forbidden": ErrorShape(200, "(#200) Permissions error", status=403),
}


def fbtrace_id() -> str:
    """A trace id like Graph's (opaque, 11 characters); support asks for it, so we send one."""
    return "A" + "".join(random.choices(string.ascii_letters + string.digits + "-_", k=10))


def error_body(exc: SandboxError, shapes: dict[str, ErrorShape]) -> tuple[int, dict[str, Any]]:
    """The HTTP status and JSON body a Graph host returns for ``exc``."""
    if isinstance(exc, GraphError):
        err: dict[str, Any] = {"message": exc.message, "type": exc.type, "code": exc.code}
        subcode, transient, title, msg, status = exc.subcode, exc.transient, exc.user_title, exc.user_msg, exc.status
    else:
        shape = shapes.get(exc.kind) or BASE_SHAPES.get(exc.kind) or BASE_SHAPES["invalid"]
        err = {"message": shape.message, "type": shape.type, "code": shape.code}
        subcode, transient, title, msg, status = (
            shape.subcode,
            shape.transient,
            shape.user_title,
            shape.user_msg,
            shape.status,
        )
    if subcode is not None:
        err["error_subcode"] = subcode
    err["is_transient"] = transient
    if title:
        err["error_user_title"] = title
    if msg:
        err["error_user_msg"] = msg
    err["fbtrace_id"] = fbtrace_id()
    return status, {"error": err}


def render_error(exc: SandboxError, shapes: dict[str, ErrorShape]) -> Response:
    """Render ``exc`` as Graph does, with the usage headers the router attached to it."""
    status, body = error_body(exc, shapes)
    headers = dict(exc.headers)
    headers["x-fb-trace-id"] = body["error"]["fbtrace_id"]
    if body["error"]["code"] == 190:
        # Graph answers token errors with this challenge (RFC 6750 style, Facebook's realm).
        headers["WWW-Authenticate"] = f'OAuth "Facebook Platform" "invalid_token" "{body["error"]["message"]}"'
    return JSONResponse(body, status_code=status, headers=headers)


def not_found(node: str, method: str = "get") -> GraphError:
    return GraphError(
        "not_found",
        400,
        f"Unsupported {method} request. Object with ID '{node}' does not exist, cannot be loaded due to "
        "missing permissions, or does not support this operation.",
        code=100,
        subcode=33,
        type="GraphMethodException",
    )


def missing(param: str) -> GraphError:
    return GraphError("invalid", 400, f"(#100) The parameter {param} is required", code=100)


# ----------------------------------------------------------------------------- usage headers


def usage_percent(window: Window | None) -> int:
    """Share of the window used, in percent, as Graph reports it (100 once the window is spent)."""
    if window is None or window.limit <= 0:
        return 0
    used = window.limit - window.remaining
    percent = math.ceil(used * 100 / window.limit)
    return 100 if not window.allowed else min(100, percent)


def regain_minutes(window: Window | None, now: float | None = None) -> int:
    """``estimated_time_to_regain_access``: whole minutes until the window reopens, 0 when open."""
    if window is None or (window.allowed and window.remaining > 0):
        return 0
    now = time.time() if now is None else now
    return max(1, math.ceil((window.reset_epoch - now) / 60))


def app_usage_header(window: Window | None) -> dict[str, str]:
    """``X-App-Usage``: percentages of the app's (or app-user pair's) rolling allowance."""
    pct = usage_percent(window)
    return {
        "X-App-Usage": json.dumps(
            {"call_count": pct, "total_cputime": min(pct, 100) // 2, "total_time": min(pct, 100) // 2}
        )
    }


def buc_usage_header(owner_id: str, use_case: str, window: Window | None) -> dict[str, str]:
    """``X-Business-Use-Case-Usage`` keyed by the business object (Page, IG user) the call touched."""
    pct = usage_percent(window)
    entry = {
        "type": use_case,
        "call_count": pct,
        "total_cputime": pct // 2,
        "total_time": pct // 2,
        "estimated_time_to_regain_access": regain_minutes(window),
    }
    return {"X-Business-Use-Case-Usage": json.dumps({owner_id: [entry]})}


# ----------------------------------------------------------------------------- request helpers


def access_token(request: Request, params: dict[str, Any]) -> str | None:
    """The token as Graph accepts it: ``Authorization: Bearer|OAuth``, or an ``access_token`` parameter."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() in ("bearer", "oauth") and value.strip():
        return value.strip()
    token = params.get("access_token")
    return str(token) if token else None


async def request_params(request: Request) -> dict[str, Any]:
    """Query string and body merged: Graph takes POST parameters as form fields, query or JSON."""
    params: dict[str, Any] = dict(request.query_params)
    if request.method in ("POST", "DELETE", "PUT"):
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("application/json"):
            body = await request.body()
            if body.strip():
                try:
                    data = json.loads(body)
                except ValueError as exc:
                    raise GraphError("invalid", 400, "(#100) Invalid JSON for postBody", code=100) from exc
                if isinstance(data, dict):
                    params.update(data)
        elif ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return params


def split_fields(fields: str | None) -> list[str]:
    """Top-level comma split of a ``fields`` value, keeping ``a.b(c){d,e}`` specs whole."""
    if not fields:
        return []
    out, depth, current = [], 0, ""
    for char in fields:
        if char in "({":
            depth += 1
        elif char in ")}":
            depth -= 1
        if char == "," and depth == 0:
            out.append(current.strip())
            current = ""
        else:
            current += char
    if current.strip():
        out.append(current.strip())
    return out


def field_name(spec: str) -> str:
    """``reactions.summary(total_count).limit(0)`` -> ``reactions``."""
    return re.split(r"[.{(]", spec, maxsplit=1)[0]


def select(values: dict[str, Any], fields: str | None, default: Iterable[str]) -> dict[str, Any]:
    """Only the requested fields (Graph omits unknown-but-valid fields that have no value); ``id`` always."""
    names = [field_name(f) for f in split_fields(fields)] or list(default)
    out = {name: values[name] for name in names if name in values and values[name] is not None}
    if "id" in values:
        out["id"] = values["id"]
    return out


def graph_time(moment: datetime) -> str:
    """Graph's time format: second precision, ``+0000``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def parse_when(value: Any, name: str) -> datetime | None:
    """``since``/``until`` as Graph takes them: Unix seconds or an ISO 8601 time."""
    if value in (None, ""):
        return None
    text = str(value).strip()
    try:
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return datetime.fromtimestamp(float(text), UTC)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise GraphError("invalid", 400, f"(#100) Invalid {name} parameter: {text}", code=100) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def in_range(moment: datetime, since: datetime | None, until: datetime | None) -> bool:
    moment = moment.replace(microsecond=0)
    return (since is None or moment >= since) and (until is None or moment <= until)


def truthy(value: Any) -> bool:
    return str(value).lower() in ("1", "true", "yes")


def comma_list(value: Any) -> list[str]:
    """A comma-separated parameter (``metric``, ``children``) as its non-empty, trimmed items."""
    return [item.strip() for item in str(value or "").split(",") if item.strip()]


def folded(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def shortcode(number: str) -> str:
    """A permalink code derived from a numeric id (Instagram's base64 alphabet)."""
    alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
    value, out = int(number) if number.isdigit() else abs(hash(number)), ""
    while value:
        value, rest = divmod(value, 64)
        out = alphabet[rest] + out
    return out or "A"


# ----------------------------------------------------------------------------- paging


def _cursor(item_id: str) -> str:
    return base64.urlsafe_b64encode(f"cursor:{item_id}".encode()).decode().rstrip("=")


def _uncursor(cursor: str) -> str | None:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except ValueError:
        return None
    return raw[len("cursor:") :] if raw.startswith("cursor:") else None


def paginate(
    request: Request,
    params: dict[str, Any],
    items: list[dict[str, Any]],
    *,
    default_limit: int = 25,
    max_limit: int = 100,
) -> dict[str, Any]:
    """One page of ``items`` (already ordered) with Graph's cursor paging block."""
    try:
        limit = max(1, min(max_limit, int(params.get("limit") or default_limit)))
    except ValueError as exc:
        raise GraphError("invalid", 400, "(#100) Param limit must be a number", code=100) from exc
    ids = [str(item["id"]) for item in items]
    start, end = 0, min(len(items), limit)
    if params.get("after"):
        anchor = _uncursor(str(params["after"]))
        if anchor is None:
            raise GraphError("invalid", 400, "(#100) Invalid after cursor", code=100)
        start = ids.index(anchor) + 1 if anchor in ids else len(ids)
        end = min(len(items), start + limit)
    elif params.get("before"):
        anchor = _uncursor(str(params["before"]))
        end = ids.index(anchor) if anchor in ids else 0
        start = max(0, end - limit)
    page = items[start:end]
    if not page:
        return {"data": []}
    paging: dict[str, Any] = {"cursors": {"before": _cursor(ids[start]), "after": _cursor(ids[end - 1])}}
    base = {k: v for k, v in request.query_params.items() if k not in ("after", "before")}
    url = str(request.url).split("?", 1)[0]
    if end < len(items):
        paging["next"] = f"{url}?{urlencode({**base, 'limit': limit, 'after': _cursor(ids[end - 1])})}"
    if start > 0:
        paging["previous"] = f"{url}?{urlencode({**base, 'limit': limit, 'before': _cursor(ids[start])})}"
    return {"data": page, "paging": paging}


# ----------------------------------------------------------------------------- insights


def insights(
    node_id: str,
    requested: str | None,
    values: dict[str, int],
    *,
    period: str = "lifetime",
    titles: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An ``/insights`` answer; an unknown (or retired) metric name fails the whole request, as Graph does."""
    if not requested:
        raise missing("metric")
    names = comma_list(requested)
    for index, name in enumerate(names):
        if name not in values:
            raise GraphError(
                "invalid",
                400,
                f"(#100) metric[{index}] must be one of the following values: {', '.join(values)}",
                code=100,
            )
    titles = titles or {}
    return {
        "data": [
            {
                "name": name,
                "period": period,
                "values": [{"value": values[name]}],
                "title": titles.get(name, name.replace("_", " ").title()),
                "description": f"Lifetime: {titles.get(name, name)}",
                "id": f"{node_id}/insights/{name}/{period}",
            }
            for name in names
        ]
    }


def comments_on(state: SandboxState, platform: str, post_id: str) -> list[Comment]:
    """Residents' comments answering ``post_id``, oldest first."""
    with state.lock:
        found = [c for c in state.comments.get(platform, []) if c.post_id == post_id]
    return sorted(found, key=lambda c: (c.created_at, int(c.comment_id) if c.comment_id.isdigit() else 0))


def reply_count(state: SandboxState, post: Post) -> int:
    """Seeded replies plus the comments the sandbox holds for the post."""
    return post.metrics.get("replies", 0) + len(comments_on(state, post.platform, post.post_id))


# ----------------------------------------------------------------------------- token inspection


def debug_token(
    state: SandboxState, platform: str, input_token: str | None, token_type: str, scopes: list[str]
) -> dict[str, Any]:
    """``GET /debug_token`` data: validity, ``expires_at`` (0 = never) and the profile it belongs to."""
    if not input_token:
        raise missing("input_token")
    account = state.account_by_token(platform, input_token)
    if account is None:
        return {
            "data": {"error": {"code": 190, "message": "Invalid OAuth access token."}, "is_valid": False, "scopes": []}
        }
    expires = int(account.token_expires_at.timestamp()) if account.token_expires_at else 0
    data: dict[str, Any] = {
        "app_id": "1000000000000001",
        "type": token_type,
        "application": "Koho sandbox",
        "data_access_expires_at": int(time.time()) + 90 * 86400,
        "expires_at": expires,
        "is_valid": not account.token_revoked and (not expires or expires > time.time()),
        "scopes": scopes,
        "user_id": account.account_id,
        "profile_id": account.account_id,
    }
    if not data["is_valid"]:
        data["error"] = {"code": 190, "message": "Error validating access token: Session has expired.", "subcode": 463}
    return {"data": data}


# ----------------------------------------------------------------------------- the router


@dataclass
class Ctx:
    """One request as a handler sees it."""

    request: Request
    state: SandboxState
    platform: str
    account: Account
    params: dict[str, Any]
    args: dict[str, str]
    version: str
    window: Window | None = None
    fault: Fault | None = None
    owner_id: str | None = None  # the business object whose usage header the answer carries

    async def gate(self, operation: str, *, cost: int = 1) -> None:
        """Count the call against the account's usage window and draw an injected fault."""
        self.fault, self.window = await gate(
            self.request, self.platform, operation, self.account, bucket="calls", cost=cost
        )

    def fields(self) -> str | None:
        return self.params.get("fields")

    def field_names(self) -> set[str]:
        """The top-level names ``fields=`` asks for; some decide which quota a read is charged to."""
        return {field_name(spec) for spec in split_fields(self.fields())}

    def is_self(self, node: str) -> bool:
        """Whether ``node`` names the token's own account (``me`` or its id)."""
        return node in ("me", self.account.account_id)

    def page(self, rows: list[dict[str, Any]], **limits: int) -> dict[str, Any]:
        """One page of ``rows`` with the cursors for this request's ``limit``/``after``/``before``."""
        return paginate(self.request, self.params, rows, **limits)

    def dated_posts(self, account_id: str, keep: Callable[[Post], bool] = lambda p: True) -> list[Post]:
        """The account's live posts, newest first, inside the request's ``since``/``until``."""
        since = parse_when(self.params.get("since"), "since")
        until = parse_when(self.params.get("until"), "until")
        return [
            p
            for p in self.state.account_posts(self.platform, account_id)
            if in_range(p.created_at, since, until) and keep(p)
        ]

    def node_post(self, method: str = "get", *, own: bool = False) -> Post:
        """The live post ``{node}`` names; with ``own``, one of the token's (Graph answers others' as missing)."""
        node = self.args["node"]
        post = self.state.post(self.platform, node)
        if post is None or (own and post.account_id != self.account.account_id):
            raise not_found(node, method)
        return post

    def search_text(self) -> str:
        """The ``q`` of a search edge, folded for matching; Graph refuses a search without one."""
        query = str(self.params.get("q") or "").strip()
        if not query:
            raise missing("q")
        return folded(query)

    async def gate_post(self, operation: str) -> Post:
        """The post ``{node}`` names, the call charged to (and reported for) the account that owns it."""
        post = self.node_post()
        self.owner_id = post.account_id
        await self.gate(operation)
        return post


Handler = Callable[[Ctx], Awaitable[Any]]
Usage = Callable[[Ctx, Window | None], dict[str, str]]


def buc_usage(use_case: str) -> Usage:
    """Usage headers for a Business Use Case, keyed by the object the call touched (else the token's own)."""

    def usage(ctx: Ctx, window: Window | None) -> dict[str, str]:
        return buc_usage_header(ctx.owner_id or ctx.account.account_id, use_case, window)

    return usage


def app_usage(ctx: Ctx, window: Window | None) -> dict[str, str]:
    """Usage headers for the app-user pair's allowance, which no business object keys."""
    return app_usage_header(window)


@dataclass
class GraphRouter:
    """Node/edge routing, auth, usage headers and error rendering for one Graph host."""

    platform: str
    shapes: dict[str, ErrorShape]
    usage: Usage
    routes: list[tuple[str, list[str], Handler]] = field(default_factory=list)

    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        """Register ``handler`` for ``pattern`` (``{name}`` segments bind); earlier routes win."""

        def register(handler: Handler) -> Handler:
            self.routes.append((method.upper(), pattern.strip("/").split("/"), handler))
            return handler

        return register

    def serve_debug_token(self, token_type: str, scopes: list[str]) -> None:
        """``GET /debug_token`` as graph.facebook.com answers it for this host's token type and scopes."""

        async def inspect_token(ctx: Ctx) -> dict:
            await ctx.gate("verify")
            return debug_token(ctx.state, self.platform, ctx.params.get("input_token"), token_type, scopes)

        self.route("GET", "debug_token")(inspect_token)

    def render(self, exc: SandboxError) -> Response:
        return render_error(exc, self.shapes)

    def _match(self, method: str, parts: list[str]) -> tuple[Handler, dict[str, str]] | None:
        for route_method, pattern, handler in self.routes:
            if route_method != method or len(pattern) != len(parts):
                continue
            args: dict[str, str] = {}
            for want, got in zip(pattern, parts, strict=True):
                if want.startswith("{"):
                    args[want[1:-1]] = got
                elif want != got:
                    break
            else:
                return handler, args
        return None

    async def dispatch(self, request: Request, version: str, path: str) -> Response:
        state = state_of(request)
        ctx: Ctx | None = None
        try:
            if not VERSION.match(version):
                raise GraphError("invalid", 400, f"Unknown path components: /{version}/{path}", code=2500)
            params = await request_params(request)
            parts = [p for p in path.split("/") if p]
            found = self._match(request.method, parts)
            if found is None:
                raise GraphError("invalid", 400, f"Unknown path components: /{'/'.join(parts[1:]) or path}", code=2500)
            handler, args = found
            account = authenticate(state, self.platform, access_token(request, params))
            ctx = Ctx(request, state, self.platform, account, params, args, version)
            body = await handler(ctx)
        except SandboxError as exc:
            if ctx is not None:
                exc.headers.update(self.usage(ctx, exc.window or ctx.window))
            return self.render(exc)
        if ctx.fault is not None and ctx.fault.kind == "lost_response":
            return await lost_response(ctx.fault)
        trace = fbtrace_id()
        return JSONResponse(body, headers={**self.usage(ctx, ctx.window), "x-fb-trace-id": trace})


def authenticate(state: SandboxState, platform: str, token: str | None) -> Account:
    """The account a token belongs to, or the Graph token error (unknown, revoked, expired)."""
    account = state.account_by_token(platform, token)
    if account is None:
        raise SandboxError("invalid_token", 400, "Invalid OAuth access token - Cannot parse access token")
    if account.token_revoked:
        raise GraphError(
            "expired_token",
            400,
            "Error validating access token: The session has been invalidated because the user changed their "
            "password or Facebook has changed the session for security reasons.",
            code=190,
            subcode=460,
        )
    if account.token_expires_at and account.token_expires_at <= utcnow():
        now = utcnow()
        raise GraphError(
            "expired_token",
            400,
            f"Error validating access token: Session has expired on {account.token_expires_at:%A, %d-%b-%y %H:%M:%S} "
            f"UTC. The current time is {now:%A, %d-%b-%y %H:%M:%S} UTC.",
            code=190,
            subcode=463,
        )
    return account


def graph_app(title: str, router: GraphRouter) -> FastAPI:
    """The host's sub-app: every ``/{version}/{path}`` goes through ``router``, errors in its shapes."""
    app = sub_app(title, router.render)

    async def endpoint(request: Request, version: str, path: str) -> Response:
        return await router.dispatch(request, version, path)

    app.add_api_route("/{version}/{path:path}", endpoint, methods=["GET", "POST", "DELETE"], include_in_schema=False)
    return app
