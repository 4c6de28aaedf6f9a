"""Mastodon: publish with an idempotency key, delete, read back, metrics, mentions, search.

The connection: ``host`` is the instance's base URL (``https://social.example.jp``; there is
no default, every city picks its instance), ``login`` the handle, ``password`` an access token
with ``read`` and ``write`` scopes.

Mastodon deduplicates ``POST /api/v1/statuses`` by the ``Idempotency-Key`` header for about an
hour, so a publish whose answer was lost is simply sent again with the same key (Koho's
delivery key). An attempt that may be older than that hour (a worker killed yesterday) is
reconciled by reading the account's own statuses first.

Images: each is uploaded with ``POST /api/v2/media`` (multipart ``file``, optional
``description``) -> a MediaAttachment (``id``, ``type``, ``url``). Mastodon answers 200 when the
file is processed and 202 with ``url: null`` while it is still processing; then
``GET /api/v1/media/{id}`` is polled (206 while processing, 200 when done), because a status
naming unprocessed media is refused with 422. The status then carries ``media_ids`` (at most 4;
docs.joinmastodon.org "media" and "statuses"). Uploads count against their own window (30 per 30
minutes). A lost upload answer is harmless (unattached media is no post and the instance removes
it); the ids are kept per delivery for the hook's lifetime, so a status retried with its
idempotency key names the same media.

Status ``content`` is HTML; every text this hook returns is plain text.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterable
from datetime import datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from koho import secrets
from koho.errors import InputError, Problem, Where
from koho.platforms.base import PlatformHook, RateLimitInfo, parse_time
from koho.platforms.errors import AuthExpired, PermanentlyRejected, PlatformError, TransientError
from koho.platforms.types import (
    AccountInfo,
    AccountMetrics,
    Capabilities,
    Comment,
    CommentPage,
    OutgoingPost,
    PostMetrics,
    PublishedPost,
    RemotePost,
)
from koho.text.rules import CHARACTERS_RESERVED_PER_URL, TextRule, count_mastodon, rules_for

_PAGE_CAP = 10
#: ``configuration.statuses.max_media_attachments`` and the default ``image_size_limit`` (16 MB)
#: of Mastodon 4; an instance announcing less refuses with 422, which is ``bad_media`` too.
MAX_IMAGES = 4
MAX_IMAGE_BYTES = 16 * 1024 * 1024
#: How often an upload still processing is asked after before the post is left for a later try.
MEDIA_POLLS = 8


class _TextExtractor(HTMLParser):
    """Status HTML to plain text: paragraphs become blank lines, ``<br>`` a line break."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._paragraphs = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")
        elif tag == "p":
            if self._paragraphs:
                self.parts.append("\n\n")
            self._paragraphs += 1

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def plain_text(content: str) -> str:
    """The text a resident or staff member reads in a status's HTML ``content``."""
    parser = _TextExtractor()
    parser.feed(content or "")
    parser.close()
    return "".join(parser.parts).strip()


class MastodonHook(PlatformHook):
    """Mastodon client API for one account on one instance."""

    platform = "mastodon"
    capabilities = Capabilities(images=True, uploads_images=True, idempotency_key=True)

    #: Items per page when listing (Mastodon allows up to 40 statuses or 80 notifications).
    page_size: int = 40
    _me: AccountInfo | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Delivery key -> media ids already uploaded for it (see the module docstring).
        self._uploaded: dict[str, list[dict[str, Any]]] = {}
        #: The instance's (max characters, characters per URL); ``False`` until read, ``None`` if unknown.
        self._instance_limits: tuple[int, int] | bool | None = False

    # ----------------------------------------------------------------- connection

    def _set_base_url(self, connection) -> None:
        host = (connection.host or "").strip()
        if not host:
            raise InputError(
                [
                    Problem(
                        Where(account=self.koho_conn_id, field="host"),
                        "a Mastodon connection needs the instance's base URL in 'host', e.g. https://social.example.jp",
                    )
                ]
            )
        if "://" not in host:
            host = f"https://{host}"  # instances are served over HTTPS; HttpHook would assume http
        self.base_url = host.rstrip("/") + (f":{connection.port}" if connection.port else "")
        self._base_url_initialized = True

    # ----------------------------------------------------------------- protocol

    def rate_bucket(self, method: str, path: str) -> str:
        """One window per account, plus Mastodon's separate window for deleting statuses."""
        path = path.split("?", 1)[0]
        if method.upper() == "DELETE" and re.match(r"^/?api/v1/statuses/[^/]+$", path):
            return "statuses:delete"
        if method.upper() == "POST" and re.match(r"^/?api/v[12]/media$", path):
            return "media"
        return "api"

    def parse_rate_limit(self, response: requests.Response) -> RateLimitInfo | None:
        headers = response.headers
        if "X-RateLimit-Reset" not in headers and "X-RateLimit-Remaining" not in headers:
            return None

        def number(name: str) -> int | None:
            value = headers.get(name, "").strip()
            return int(value) if value.isdigit() else None

        try:
            reset_at = parse_time(headers.get("X-RateLimit-Reset"))
        except ValueError:
            reset_at = None
        return RateLimitInfo(number("X-RateLimit-Limit"), number("X-RateLimit-Remaining"), reset_at)

    def classify_error(self, response: requests.Response) -> PlatformError:
        try:
            body = response.json()
        except ValueError:
            return super().classify_error(response)
        detail = body.get("error") if isinstance(body, dict) else None
        status = response.status_code
        if not isinstance(detail, str) or status == 429 or status >= 500:
            return super().classify_error(response)
        message = secrets.redact(detail)
        kw: dict[str, Any] = {"platform": self.platform, "account": self.account_label, "status": status}
        lowered = detail.lower()
        if status == 401:
            return AuthExpired(f"{message}; issue a new access token for the connection", **kw)
        # StatusLengthValidator says "character limit of 500 exceeded"; Rails' own length
        # validator, which forks and other fields use, says "is too long (maximum is N characters)".
        if status == 422 and ("character limit" in lowered or "is too long" in lowered):
            return PermanentlyRejected(message, kind="too_long", **kw)
        if status == 422 and "duplicate" in lowered:
            return PermanentlyRejected(message, kind="duplicate", **kw)
        if status == 422 and ("media" in lowered or "file" in lowered):
            return PermanentlyRejected(message, kind="bad_media", **kw)
        kind = {403: "forbidden", 404: "not_found"}.get(status, "invalid")
        return PermanentlyRejected(message, kind=kind, **kw)

    # ----------------------------------------------------------------- account

    def verify_credentials(self) -> AccountInfo:
        account = self.call("GET", "/api/v1/accounts/verify_credentials").json()
        info = self._account_info(account, token_expires_at=parse_time(self.extras.get("token_expires_at")))
        self._me = info
        return info

    @staticmethod
    def _account_info(account: dict[str, Any], **kw: Any) -> AccountInfo:
        return AccountInfo(
            remote_id=str(account["id"]),
            handle=account.get("acct") or account.get("username", ""),
            display_name=account.get("display_name") or None,
            followers=account.get("followers_count"),
            url=account.get("url"),
            **kw,
        )

    def account_id(self) -> str:
        configured = self.extras.get("account_id")
        if configured:
            return str(configured)
        if self._me is None:
            self.verify_credentials()
        assert self._me is not None
        return self._me.remote_id

    def account_metrics(self) -> AccountMetrics:
        account = self.call("GET", f"/api/v1/accounts/{self.account_id()}").json()
        return AccountMetrics(
            followers=account.get("followers_count"),
            posts=account.get("statuses_count"),
            extra={"following": int(account.get("following_count") or 0)},
        )

    # ----------------------------------------------------------------- posts

    def publish(self, post: OutgoingPost, *, idempotency_key: str) -> PublishedPost:
        """``POST /api/v1/statuses`` with the delivery's key; a lost answer is resent with the same key."""
        body: dict[str, Any] = {
            "status": self.text_with_link(post),
            "visibility": self.extras.get("visibility") or "public",
            "language": post.language,
        }
        if post.image_urls:
            body["media_ids"] = self._media_ids(post.image_urls, idempotency_key)
        if post.reply_to:
            body["in_reply_to_id"] = post.reply_to
        response = self.call(
            "POST", "/api/v1/statuses", json=body, headers={"Idempotency-Key": idempotency_key}, retry_unknown=True
        )
        status = response.json()
        return PublishedPost(str(status["id"]), status.get("url"), parse_time(status.get("created_at")))

    def _media_ids(self, urls: Iterable[str], idempotency_key: str) -> list[str]:
        """Upload the post's images (limits checked first), wait until processed, return their ids.

        The uploads are remembered before waiting, so a post retried after processing took too
        long waits for the same media instead of uploading it again.
        """
        urls = list(urls)
        attachments = self._uploaded.get(idempotency_key)
        if attachments is None or len(attachments) != len(urls):
            images = self.read_images(urls, max_count=MAX_IMAGES, max_bytes=MAX_IMAGE_BYTES)
            attachments = [
                self.call(
                    "POST",
                    "/api/v2/media",
                    files={"file": (f"image-{index}", data, mime)},
                    retry_unknown=True,  # a lost upload is unattached media, never a post
                ).json()
                for index, (data, mime) in enumerate(images)
            ]
            self._uploaded[idempotency_key] = attachments
        for index, attachment in enumerate(attachments):
            attachments[index] = self._processed(attachment)
        return [str(a["id"]) for a in attachments]

    def _processed(self, attachment: dict[str, Any]) -> dict[str, Any]:
        """The attachment once the instance has processed it (``url`` set), polling a bounded number of times."""
        answers = iter([attachment])

        def check() -> dict[str, Any]:  # the upload's own answer first, then the media's
            return next(answers, None) or self.call("GET", f"/api/v1/media/{attachment['id']}").json()

        attachment = self.poll(
            check, lambda media: bool(media.get("url")), checks=MEDIA_POLLS + 1, wait=self.retry.backoff
        )
        if attachment.get("url"):
            return attachment
        raise TransientError(
            f"media {attachment['id']} is still processing on the instance; the post will be tried again",
            platform=self.platform,
            account=self.account_label,
        )

    def delete(self, remote_id: str) -> None:
        """``DELETE /api/v1/statuses/{id}``; idempotent, and a status already gone counts as deleted."""
        try:
            self.call("DELETE", f"/api/v1/statuses/{remote_id}", retry_unknown=True)
        except PermanentlyRejected as exc:
            if exc.kind != "not_found":
                raise
            self.log.info("mastodon: status %s is already gone", remote_id)

    def get_post(self, remote_id: str) -> RemotePost:
        return self._remote(self.call("GET", f"/api/v1/statuses/{remote_id}").json())

    @staticmethod
    def _remote(status: dict[str, Any]) -> RemotePost:
        return RemotePost(
            remote_id=str(status["id"]),
            text=plain_text(status.get("content", "")),
            created_at=parse_time(status.get("created_at")),
            url=status.get("url"),
        )

    def list_recent_posts(self, since: datetime, *, limit: int = 100) -> list[RemotePost]:
        """Own statuses created at or after ``since``, newest first, following ``Link: rel=next``."""
        posts: list[RemotePost] = []
        params: dict[str, Any] = {"limit": min(40, self.page_size), "exclude_reblogs": "true"}
        for _ in range(_PAGE_CAP):
            response = self.call("GET", f"/api/v1/accounts/{self.account_id()}/statuses", params=params)
            statuses = response.json()
            for status in statuses:
                remote = self._remote(status)
                if remote.created_at is not None and remote.created_at < since:
                    return posts
                posts.append(remote)
                if len(posts) >= limit:
                    return posts
            max_id = _link_param(response, "next", "max_id")
            if not statuses or max_id is None:
                return posts
            params = {**params, "max_id": max_id}
        return posts

    def post_metrics(self, remote_id: str) -> PostMetrics:
        status = self.call("GET", f"/api/v1/statuses/{remote_id}").json()
        return PostMetrics(
            remote_id=remote_id,
            impressions=None,  # Mastodon does not count views
            likes=int(status.get("favourites_count") or 0),
            reposts=int(status.get("reblogs_count") or 0),
            replies=int(status.get("replies_count") or 0),
            quotes=int(status.get("quotes_count") or 0),
        )

    # ----------------------------------------------------------------- comments

    def comments_since(self, cursor: str | None = None, *, post_ids: Iterable[str] = ()) -> CommentPage:
        """Mention notifications newer than ``cursor`` (the newest notification id seen).

        A reply on Mastodon mentions the author it answers, so mentions cover replies to the
        account's posts; ``post_ids`` is not needed. With a cursor the pages are walked upwards
        with ``min_id`` so nothing between the cursor and now is skipped.
        """
        own = (self.connection.login or "").lstrip("@").split("@")[0].lower()
        comments: list[Comment] = []
        newest = cursor
        base: list[tuple[str, Any]] = [("types[]", "mention"), ("limit", min(80, self.page_size))]
        paging: list[tuple[str, Any]] = [("min_id", cursor)] if cursor else []
        for _ in range(_PAGE_CAP):
            response = self.call("GET", "/api/v1/notifications", params=base + paging)
            notifications = response.json()
            for item in notifications:
                if item.get("type") == "mention" and item.get("status"):
                    comments.append(_comment(item["status"], own))
                if newest is None or _id_key(str(item["id"])) > _id_key(newest):
                    newest = str(item["id"])
            if not notifications:
                break
            if cursor:  # walking up: the next newer page starts above this page's newest
                paging = [("min_id", str(max((str(n["id"]) for n in notifications), key=_id_key)))]
            else:  # first run: walk down through what the instance still lists
                max_id = _link_param(response, "next", "max_id")
                if max_id is None:
                    break
                paging = [("max_id", max_id)]
        comments.sort(key=lambda c: _id_key(c.remote_id))
        return CommentPage(comments=comments, cursor=newest)

    # ----------------------------------------------------------------- look-alikes

    def search_accounts(self, query: str, *, limit: int = 20) -> list[AccountInfo]:
        """``GET /api/v2/search?type=accounts`` on the instance (without resolving remote accounts)."""
        params = {"q": query, "type": "accounts", "limit": max(1, min(40, limit)), "resolve": "false"}
        accounts = self.call("GET", "/api/v2/search", params=params).json().get("accounts") or []
        return [self._account_info(a) for a in accounts][:limit]

    def max_characters(self) -> tuple[int, int] | None:
        """(max characters, characters per URL) the instance announces in ``/api/v2/instance``.

        Read once per hook: the limit is the instance's, and instances differ (500 is only the
        stock default; forks and admins set 1,000 or more). ``None`` when the instance does not
        say (an old version, a failed read): the configured rule stands then.
        """
        if self._instance_limits is False:
            try:
                body = self.call("GET", "/api/v2/instance").json()
            except (TransientError, PermanentlyRejected) as exc:
                self.log.warning("mastodon: could not read the instance's limits (%s); using the configured ones", exc)
                body = {}
            statuses = ((body if isinstance(body, dict) else {}).get("configuration") or {}).get("statuses") or {}
            try:
                most = int(statuses["max_characters"])
                per_url = int(statuses.get("characters_reserved_per_url", CHARACTERS_RESERVED_PER_URL))
                self._instance_limits = (most, per_url) if most > 0 and per_url >= 0 else None
            except (KeyError, TypeError, ValueError):
                self._instance_limits = None
        return self._instance_limits

    def text_rule(self, configured: TextRule | None = None) -> TextRule:
        """The length rule to fit this account's posts by: the instance's, when it announces one."""
        rule = configured or rules_for(self.platform)
        announced = self.max_characters()
        if announced is None:
            return rule
        most, per_url = announced
        return dataclasses.replace(
            rule.with_limit(most), counter=functools.partial(count_mastodon, url_length=per_url), url_length=per_url
        )


def _id_key(value: str) -> tuple[int, str]:
    """Mastodon ids are numeric strings of growing length; compare them as numbers."""
    return (len(value), value)


def _link_param(response: requests.Response, rel: str, name: str) -> str | None:
    """A paging parameter from the ``Link`` header (``requests`` parses it into ``links``)."""
    url = (response.links.get(rel) or {}).get("url")
    if not url:
        return None
    values = parse_qs(urlsplit(url).query).get(name)
    return values[0] if values else None


def _comment(status: dict[str, Any], own: str) -> Comment:
    account = status.get("account") or {}
    text = plain_text(status.get("content", ""))
    if own:
        text = re.sub(rf"^(?:@{re.escape(own)}(?:@[\w.-]+)?\s*)+", "", text, flags=re.IGNORECASE).strip() or text
    return Comment(
        remote_id=str(status["id"]),
        text=text,
        author=account.get("acct") or account.get("username") or "",
        created_at=parse_time(status.get("created_at")),
        post_id=status.get("in_reply_to_id"),
        url=status.get("url"),
    )
