"""The sandbox timeline: what each fake platform received, shown roughly as the platform shows it.

``GET /_timeline`` lists the official accounts' posts per platform (text, images, thread, link
card), newest first; ``?platform=`` and ``?account=`` narrow it. Every post has a stable anchor,
and ``GET /_timeline/post?platform=&id=`` (the remote id Koho records) redirects to it, so the
Koho calendar can link each published item to what the "platform" shows.
``GET /_timeline/preview?platform=&handle=&part=…&image=…&link=`` shows a post that has not been
sent the same way (Koho's dry run links there), as schedulers' composers preview per network.

Post texts come from whoever posted them: the page is rendered by autoescaping Jinja, loads
nothing from elsewhere (images are shown as labelled frames) and sends a strict CSP.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode, urlsplit
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from sandbox.state import Account, Post, SandboxState

router = APIRouter(prefix="/_timeline", tags=["timeline"])
JST = ZoneInfo("Asia/Tokyo")
HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'self'",
}
#: platform -> (name as shown, accent colour, how a handle is written)
LOOKS: dict[str, tuple[str, str, str]] = {
    "x": ("X", "#0f1419", "@{handle}"),
    "facebook": ("Facebook", "#1877f2", "{name}"),
    "instagram": ("Instagram", "#c13584", "{handle}"),
    "threads": ("Threads", "#000000", "@{handle}"),
    "line": ("LINE", "#06c755", "{handle}"),
    "youtube": ("YouTube", "#ff0000", "{name}"),
    "bluesky": ("Bluesky", "#1185fe", "@{handle}"),
    "mastodon": ("Mastodon", "#6364ff", "@{handle}"),
}
_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass
class Card:
    """One post as a timeline shows it, with the replies that continue it (a thread)."""

    platform: str
    anchor: str
    name: str
    handle: str
    text: str
    when: str
    images: list[str]
    link: str | None
    replies: list[Card] = field(default_factory=list)
    remote_id: str = ""

    @property
    def link_host(self) -> str:
        return urlsplit(self.link or "").hostname or ""


def anchor(platform: str, post_id: str) -> str:
    """A stable, HTML-safe id for a post (remote ids hold ``:``, ``/`` and ``_``)."""
    return f"{platform}-{hashlib.sha256(post_id.encode()).hexdigest()[:12]}"


def _state(request: Request) -> SandboxState:
    return request.app.state.sandbox


def _shown_handle(platform: str, name: str, handle: str) -> str:
    pattern = LOOKS.get(platform, ("", "", "{handle}"))[2]
    return pattern.format(handle=handle.lstrip("@"), name=name)


def _images(post: Post) -> list[str]:
    """Labels for the post's images: a file or URL's last part, else "image n" (X sends media ids)."""
    out = []
    for n, item in enumerate(post.media, 1):
        tail = str(item).rstrip("/").rsplit("/", 1)[-1]
        out.append(tail if "." in tail else f"画像 {n} / image {n}")
    return out


def _card(post: Post, account: Account | None) -> Card:
    name = account.display_name if account else post.account_id
    handle = account.handle if account else post.account_id
    text = post.text
    if post.platform == "youtube":
        text = f"{post.extra.get('title') or post.text}\n\n{post.extra.get('description') or ''}".strip()
    return Card(
        platform=post.platform,
        anchor=anchor(post.platform, post.post_id),
        name=name,
        handle=_shown_handle(post.platform, name, handle),
        text=text,
        when=f"{post.created_at.astimezone(JST):%Y-%m-%d %H:%M} JST",
        images=_images(post),
        link=post.link,
        remote_id=post.post_id,
    )


def timeline_cards(state: SandboxState, platform: str | None = None, account: str | None = None) -> dict[str, list]:
    """{platform: [(account, [root cards newest first, replies nested oldest first])]} of official accounts."""
    out: dict[str, list] = {}
    with state.lock:
        accounts = [a for a in state.accounts.values() if a.token is not None or a.password is not None]
    for acc in sorted(accounts, key=lambda a: (a.platform, a.handle)):
        if platform not in (None, "", acc.platform) or account not in (None, "", acc.account_id, acc.handle):
            continue
        posts = state.account_posts(acc.platform, acc.account_id)
        if not posts:
            continue
        ids = {p.post_id for p in posts}
        cards = {p.post_id: _card(p, acc) for p in posts}
        roots = []
        for post in reversed(posts):  # oldest first, so replies are appended in order
            if post.reply_to in ids:
                cards[post.reply_to].replies.append(cards[post.post_id])
            else:
                roots.append(cards[post.post_id])
        out.setdefault(acc.platform, []).append((acc, list(reversed(roots))))
    return out


def _html(template: str, status: int = 200, **values) -> HTMLResponse:
    html = _env.get_template(template).render(looks=LOOKS, **values)
    return HTMLResponse(html, status_code=status, headers=HEADERS)


@router.get("", response_class=HTMLResponse)
def timeline(request: Request, platform: str | None = None, account: str | None = None) -> Response:
    groups = timeline_cards(_state(request), platform, account)
    return _html(
        "timeline.html.j2",
        groups=groups,
        platform=platform,
        account=account,
        platforms=sorted({p for p in _state(request).posts}),
        generated=f"{datetime.now(UTC).astimezone(JST):%Y-%m-%d %H:%M} JST",
    )


@router.get("/post")
def post_link(request: Request, platform: str, id: str) -> Response:
    """Where a post Koho published is on the timeline (its platform's page, at its anchor)."""
    state = _state(request)
    post = state.post(platform, id)
    if post is None:
        return _html("missing.html.j2", 404, platform=platform, remote_id=id)
    query = urlencode({"platform": platform})
    return RedirectResponse(f"../_timeline?{query}#{anchor(platform, post.post_id)}", status_code=303)


@router.get("/preview", response_class=HTMLResponse)
def preview(
    platform: str,
    handle: str = "",
    name: str = "",
    part: list[str] = Query(default_factory=list),  # noqa: B008 - FastAPI's way to read a repeated parameter
    image: list[str] = Query(default_factory=list),  # noqa: B008
    link: str | None = None,
    account: str = "",
) -> Response:
    """A post not sent yet, rendered as its platform's timeline would show it (parts = a thread)."""
    if platform not in LOOKS:
        return _html("missing.html.j2", 404, platform=platform[:40], remote_id="")
    shown = _shown_handle(platform, name or handle, handle or account)
    cards = [
        Card(platform, f"preview-{n}", name or handle, shown, text, "未送信 / not sent", image if n == 1 else [], None)
        for n, text in enumerate(part or [""], 1)
    ]
    if link and link.startswith(("http://", "https://")):  # the card goes with the part that names the link
        next((c for c in cards if link in c.text), cards[0]).link = link
    root = cards[0]
    root.replies = cards[1:]
    return _html("preview.html.j2", card=root, platform=platform, account=account)
