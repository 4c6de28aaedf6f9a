"""Bluesky (AT Protocol): posts are records in the account's repository on its PDS.

What differs from the other platforms, and why the hook is shaped this way:

* **Sessions, not tokens.** The connection holds the account's *app password*; the hook logs in
  once (``com.atproto.server.createSession``) and keeps the session for its lifetime. An expired
  access token (400 ``ExpiredToken``) is renewed with ``refreshSession``; only when the refresh
  token is gone too does the hook log in again. createSession is limited to about 30 per 5
  minutes per account, so logging in per post would lock the account out.
* **No idempotency key.** Reconciliation after an unknown outcome reads the repository
  (``com.atproto.repo.listRecords``) and matches the text *and* ``createdAt``, which Koho fixes
  when the delivery is planned and sends verbatim (milliseconds, ``Z``).
* **Rich text is byte-indexed.** Links and hashtags are facets whose ``byteStart``/``byteEnd``
  count UTF-8 bytes. The PDS does not check them, so a Japanese sentence before a URL with
  character offsets would silently store a broken link; :func:`build_facets` gets them right.
* **Rate limits** come as ``RateLimit-*`` headers (reset in epoch seconds); writes cost points
  (create 3, delete 1) from a 5,000-per-hour budget.

Remote ids are AT URIs (``at://did/app.bsky.feed.post/rkey``); the public URL of a post is
``https://bsky.app/profile/{handle}/post/{rkey}``.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grapheme
import jwt
import regex
import requests

from koho import secrets
from koho.platforms.base import PlatformHook, RateLimitInfo, normalized_text, parse_time
from koho.platforms.errors import (
    AuthExpired,
    PermanentlyRejected,
    PlatformError,
    RateLimited,
    TransientError,
    UnknownOutcome,
)
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

POST_NSID = "app.bsky.feed.post"
#: Rate-limit points a write costs on the PDS (docs.bsky.app "Rate Limits").
WRITE_POINTS = {"com.atproto.repo.createRecord": 3, "com.atproto.repo.putRecord": 2, "com.atproto.repo.deleteRecord": 1}
XRPC = "/xrpc/"
#: Endpoints that authenticate themselves (password or refresh token), never with the access token.
SESSION_NSIDS = frozenset({"com.atproto.server.createSession", "com.atproto.server.refreshSession"})
AUTH_ERRORS = frozenset({"ExpiredToken", "InvalidToken", "AuthenticationRequired", "AuthMissing", "AuthRequired"})
MAX_IMAGES = 4
#: app.bsky.embed.images accepts blobs up to 1,000,000 bytes (the lexicon's ``maxSize``).
MAX_IMAGE_BYTES = 1_000_000
#: Renew the access token this long before its ``exp`` instead of wasting a request on ExpiredToken.
REFRESH_MARGIN = timedelta(seconds=60)
#: How far listRecords paging goes when reconciling or listing (100 records a page).
MAX_PAGES = 10
COMMENT_REASONS = ("mention", "reply", "quote")

# Links: scheme and printable ASCII up to whitespace or the first non-ASCII character, because
# Japanese text often runs straight on after a URL ("https://example.jp/gomiをご覧ください").
_LINK = regex.compile(r"https?://[!-~]+")
_LINK_TRAILING = ".,;:!?'\""
# Hashtags as the Bluesky app detects them (@atproto/api rich-text detection): '#' or '＃', then
# at least one character that is not a digit, space or punctuation. The app wants a line start or
# whitespace before the '#'; Japanese puts tags straight after a full stop ("。#防災"), so
# punctuation (other than '#', '&' and '/') is accepted before it too, and Japanese sentence
# punctuation ends a tag ("#防災の日。備えを" tags "防災の日", where the app would take it all).
_ZW = r"\u00AD\u2060\u200A\u200B\u200C\u200D\u20e2"
_JA_STOPS = "、。，．！？「」『』（）【】〔〕"
_TAG_CHAR = rf"[^\s{_ZW}{_JA_STOPS}]"
_TAG = regex.compile(rf"(?<![^\s\p{{P}}])(?<![#&/])[#＃](?!\ufe0f)({_TAG_CHAR}*[^\d\s\p{{P}}{_ZW}]+{_TAG_CHAR}*)")
_TAG_TRAILING = regex.compile(r"\p{P}+$")
MAX_TAG_GRAPHEMES = 64


# --------------------------------------------------------------------------- rich text


def _byte_offset(text: str, index: int) -> int:
    """The UTF-8 byte offset of character ``index`` (facets count bytes, Python strings count code points)."""
    return len(text[:index].encode("utf-8"))


def _facet(text: str, start: int, end: int, feature: dict[str, Any]) -> dict[str, Any]:
    return {
        "index": {"byteStart": _byte_offset(text, start), "byteEnd": _byte_offset(text, end)},
        "features": [feature],
    }


def _links(text: str) -> list[tuple[int, int, str]]:
    found = []
    for match in _LINK.finditer(text):
        url, start, end = match.group(), match.start(), match.end()
        while url and url[-1] in _LINK_TRAILING:
            url, end = url[:-1], end - 1
        if url.endswith(")") and "(" not in url:
            url, end = url[:-1], end - 1
        if len(url) > len("https://"):
            found.append((start, end, url))
    return found


def _tags(text: str, taken: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    found = []
    for match in _TAG.finditer(text):
        tag = _TAG_TRAILING.sub("", match.group(1))
        start = match.start()
        end = match.start(1) + len(tag)
        if not tag or grapheme.length(tag) > MAX_TAG_GRAPHEMES:
            continue
        if any(s < end and start < e for s, e, _ in taken):
            continue  # a '#' inside a URL fragment is part of the link
        found.append((start, end, tag))
    return found


def build_facets(text: str) -> list[dict[str, Any]]:
    """Link and hashtag facets for ``text``, with byte offsets into its UTF-8 encoding.

    Not atproto's ``TextBuilder``: it finds no links or tags (it numbers segments it is given)
    and adds ``$type`` keys the app does not write; its byte ranges equal these (contract test).
    """
    links = _links(text)
    facets = [_facet(text, s, e, {"$type": "app.bsky.richtext.facet#link", "uri": url}) for s, e, url in links]
    facets += [
        _facet(text, s, e, {"$type": "app.bsky.richtext.facet#tag", "tag": tag}) for s, e, tag in _tags(text, links)
    ]
    return sorted(facets, key=lambda f: f["index"]["byteStart"])


def iso_millis(moment: datetime) -> str:
    """``createdAt`` as Bluesky clients write it: UTC, milliseconds, ``Z`` (reconciliation compares it)."""
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def split_at_uri(uri: str) -> tuple[str, str, str]:
    """``at://repo/collection/rkey`` -> (repo, collection, rkey); ValueError for anything else."""
    parts = uri[5:].split("/") if uri.startswith("at://") else []
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"not an AT URI of a record: {uri!r}")
    return parts[0], parts[1], parts[2]


def jwt_expiry(token: str | None) -> datetime | None:
    """The ``exp`` claim of a JWT-shaped session token (read, not verified: the PDS verifies).

    PyJWT reads it; without the PDS's key the signature cannot be checked, and an expired
    token must still be read (that is when the hook renews it), so no claim is verified.
    """
    if not isinstance(token, str):
        return None
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
        return datetime.fromtimestamp(int(claims["exp"]), UTC)
    except (jwt.PyJWTError, KeyError, TypeError, ValueError, OverflowError, OSError):
        return None


_TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"


#: How many record keys one delivery may try before it gives up: each is taken only when every
#: earlier one is held by another post (see :meth:`BlueskyHook.publish`).
RKEY_CANDIDATES = 4


def tid_for(moment: datetime, key: str, candidate: int = 0) -> str:
    """A TID record key minted from ``moment`` (the post's ``createdAt``) and ``key`` (the delivery's
    idempotency key): every attempt of one delivery names the same record.

    Bluesky has no idempotency key, but a record key is one: ``createRecord`` with an ``rkey`` that
    exists is refused, so an attempt that lands after a retry (a request that was only slow, a
    killed worker's request still in flight) cannot create the post a second time.

    Deliveries of one slot share ``createdAt`` to the millisecond, so the key decides: it picks the
    microseconds inside that millisecond and the 10-bit clock id, about a million keys per
    millisecond. Two deliveries can still meet on one; ``candidate`` (1, 2, ...) names the
    delivery's next key, tried only after the earlier one was found holding another post.
    """
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    micros = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    micros -= micros % 1000  # createdAt carries milliseconds: the key must follow from what is sent
    seed = key if candidate == 0 else f"{key}#{candidate}"
    digest = int.from_bytes(hashlib.sha256(seed.encode("utf-8")).digest()[:4], "big")
    micros += (digest >> 10) % 1000
    value = (micros << 10) | (digest & 0x3FF)
    return "".join(_TID_ALPHABET[(value >> shift) & 31] for shift in range(60, -1, -5))


def tid_time(rkey: str) -> datetime | None:
    """When a TID record key was minted (record keys of posts are TIDs; other keys give ``None``)."""
    if len(rkey) != 13 or any(c not in _TID_ALPHABET for c in rkey):
        return None
    value = 0
    for char in rkey:
        value = (value << 5) | _TID_ALPHABET.index(char)
    return datetime.fromtimestamp((value >> 10) / 1_000_000, UTC)


# --------------------------------------------------------------------------- the hook


class BlueskyHook(PlatformHook):
    """Bluesky through the account's PDS (``https://bsky.social`` for accounts hosted by Bluesky)."""

    platform = "bluesky"
    capabilities = Capabilities(
        publish=True,
        delete=True,
        replies=True,
        images=True,
        uploads_images=True,
        links=True,
        comments=True,
        search_accounts=True,
        idempotency_key=False,
    )
    in_flight_grace = 0.0  # the delivery's record key refuses a late second copy (see tid_for)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._access: str | None = None
        self._refresh: str | None = None
        self._did: str | None = None
        self._handle: str | None = None
        self._in_auth = False
        self._login_failed: AuthExpired | None = None
        # A calendar slot sends an account's posts from several threads through one hook: one of
        # them logs in or refreshes while the others wait for its session (createSession is scarce).
        self._session_lock = threading.RLock()

    # ------------------------------------------------------------- session

    def auth_headers(self) -> dict[str, str]:
        # The connection password is an app password, never a bearer token: requests get the
        # session's access token one by one (see :meth:`request`).
        return {}

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        if _nsid(path) not in SESSION_NSIDS:
            headers = dict(kwargs.pop("headers", None) or {})
            headers["Authorization"] = f"Bearer {self._access_token()}"
            kwargs["headers"] = headers
        return super().request(method, path, **kwargs)

    def _access_token(self) -> str:
        with self._session_lock:
            if self._access is None:
                self._login()
            else:
                expires = jwt_expiry(self._access)
                if expires is not None and datetime.now(UTC) >= expires - REFRESH_MARGIN:
                    self.refresh_auth()
            assert self._access is not None
            return self._access

    def _adopt(self, session: dict[str, Any]) -> None:
        self._access, self._refresh = session["accessJwt"], session["refreshJwt"]
        self._did, self._handle = session["did"], session.get("handle") or self._handle
        secrets.register(self._access)
        secrets.register(self._refresh)
        configured = self.extras.get("account_id")
        if configured and configured != self._did:
            self.log.warning(
                "%s: connection says account %s but the app password belongs to %s; check the connection",
                self.platform,
                configured,
                self._did,
            )

    def _login(self) -> None:
        """createSession with the app password: once per hook, or when the refresh token is gone."""
        if self._login_failed is not None:
            raise self._login_failed  # the app password was refused: trying again only burns the login limit
        if not self.connection.login or not self.token:
            raise AuthExpired(
                "the connection needs the handle as login and an app password as password",
                platform=self.platform,
                account=self.account_label,
            )
        self.log.info("%s: logging in as %s", self.platform, self.account_label)
        self._in_auth = True
        try:
            response = self.call(
                "POST",
                XRPC + "com.atproto.server.createSession",
                json={"identifier": self.connection.login, "password": self.token},
                retry_unknown=True,
            )
        except AuthExpired as exc:
            if exc.status == 401:  # the PDS refused the password itself (not a passing fault)
                self._login_failed = exc
            raise
        finally:
            self._in_auth = False
        self._adopt(response.json())

    def refresh_auth(self) -> bool:
        """Renew the session: refreshSession with the refresh token, else a fresh login."""
        with self._session_lock:
            return self._renew_session()

    def _renew_session(self) -> bool:
        if self._in_auth:
            return False
        if self._refresh is not None:
            self._in_auth = True
            try:
                response = self.call(
                    "POST",
                    XRPC + "com.atproto.server.refreshSession",
                    headers={"Authorization": f"Bearer {self._refresh}"},
                    retry_unknown=True,
                )
                self._adopt(response.json())
                return True
            except AuthExpired as exc:
                self.log.info("%s: refresh token no longer valid (%s); logging in again", self.platform, exc.code)
            finally:
                self._in_auth = False
        self._access = self._refresh = None
        self._login()  # raises AuthExpired when the app password itself was revoked
        return True

    @property
    def did(self) -> str:
        if self._did is None:
            self._access_token()
        assert self._did is not None
        return self._did

    @property
    def handle(self) -> str:
        if self._handle is None:
            self._access_token()
        return self._handle or self.connection.login

    def post_url(self, uri: str) -> str:
        _, _, rkey = split_at_uri(uri)
        return f"https://bsky.app/profile/{self.handle}/post/{rkey}"

    # ------------------------------------------------------------- protocol

    def rate_bucket(self, method: str, path: str) -> str:
        nsid = _nsid(path)
        if nsid == "com.atproto.server.createSession":
            return "session"
        if nsid == "com.atproto.server.refreshSession":
            return "refresh"
        return super().rate_bucket(method, path)

    def request_cost(self, method: str, path: str) -> int:
        """Write points on the PDS: creating a record costs 3, updating 2, deleting 1."""
        return WRITE_POINTS.get(_nsid(path), 1)

    def parse_rate_limit(self, response: requests.Response) -> RateLimitInfo | None:
        limit = _int(response.headers.get("RateLimit-Limit"))
        remaining = _int(response.headers.get("RateLimit-Remaining"))
        reset = _int(response.headers.get("RateLimit-Reset"))
        if limit is None and remaining is None and reset is None:
            return None
        return RateLimitInfo(limit, remaining, datetime.fromtimestamp(reset, UTC) if reset is not None else None)

    def classify_error(self, response: requests.Response) -> PlatformError:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "error" not in body:
            return super().classify_error(response)
        status, name = response.status_code, str(body.get("error"))
        message = secrets.redact(str(body.get("message") or name))
        kw: dict[str, Any] = {"platform": self.platform, "account": self.account_label, "status": status, "code": name}
        lowered = message.lower()
        if status == 429 or name == "RateLimitExceeded":
            info = self.parse_rate_limit(response)
            return RateLimited(message, reset_at=info.reset_at if info else None, **kw)
        if name in ("AccountTakedown", "AccountDeactivated"):
            return PermanentlyRejected(message, kind="forbidden", **kw)
        if name in AUTH_ERRORS or status == 401:
            return AuthExpired(message, **kw)
        # The lexicon validator's words for maxGraphemes ("grapheme too big") and for maxLength,
        # the 3,000 UTF-8 bytes ("string too big"); older PDS versions said "longer than".
        if "too big" in lowered or "longer than" in lowered or "too long" in lowered:
            return PermanentlyRejected(message, kind="too_long", **kw)
        if name in ("BlobTooLarge", "BlobNotFound", "PayloadTooLarge") or status == 413:
            return PermanentlyRejected(message, kind="bad_media", **kw)
        if name in ("RecordNotFound", "NotFound") or "could not locate record" in lowered:
            return PermanentlyRejected(message, kind="not_found", **kw)
        if "already exists" in lowered:
            return PermanentlyRejected(message, kind="duplicate", **kw)
        if status >= 500:
            return TransientError(message, **kw)
        return PermanentlyRejected(message, kind="invalid", **kw)

    # ------------------------------------------------------------- account

    def verify_credentials(self) -> AccountInfo:
        session = self.call("GET", XRPC + "com.atproto.server.getSession").json()
        self._did, self._handle = session["did"], session["handle"]
        try:
            profile = self._profile(self._did)
        except TransientError as exc:
            # The session answered, so the credentials are good; the profile is the AppView's,
            # which the PDS proxies (502 while it is down): the profile is unknown, not the login.
            self.log.warning(
                "%s: profile of %s unavailable (%s); reported as unknown", self.platform, self._handle, exc
            )
            profile = {}
        return AccountInfo(
            remote_id=self._did,
            handle=self._handle,
            display_name=profile.get("displayName") or None,
            followers=profile.get("followersCount"),
            url=f"https://bsky.app/profile/{self._handle}",
            token_expires_at=self._token_expires_at(),
        )

    def _token_expires_at(self) -> datetime | None:
        """When staff must act: the app password's planned rotation if configured, else the session's end.

        App passwords do not expire; the refresh token (90 days) bounds the session, after which
        the hook must spend one of the few createSession calls to log in again.
        """
        configured = parse_time(self.extras.get("token_expires_at"))
        return configured or jwt_expiry(self._refresh)

    def _profile(self, actor: str) -> dict[str, Any]:
        return self.call("GET", XRPC + "app.bsky.actor.getProfile", params={"actor": actor}).json()

    def account_metrics(self) -> AccountMetrics:
        profile = self._profile(self.did)
        return AccountMetrics(
            followers=profile.get("followersCount"),
            posts=profile.get("postsCount"),
            extra={"follows": int(profile.get("followsCount") or 0)},
        )

    def search_accounts(self, query: str, *, limit: int = 20) -> list[AccountInfo]:
        params = {"q": query, "limit": max(1, min(limit, 100))}
        actors = self.call("GET", XRPC + "app.bsky.actor.searchActors", params=params).json().get("actors", [])
        return [
            AccountInfo(
                remote_id=a["did"],
                handle=a["handle"],
                display_name=a.get("displayName") or None,
                followers=a.get("followersCount"),
                url=f"https://bsky.app/profile/{a['handle']}",
            )
            for a in actors[:limit]
        ]

    # ------------------------------------------------------------- publishing

    def publish(self, post: OutgoingPost, *, idempotency_key: str) -> PublishedPost:
        """One createRecord, naming the record after the delivery (see :func:`tid_for`).

        A refused key is looked up: holding this very post (an earlier attempt landed), it is the
        answer; holding another post (two deliveries met on one key), the delivery's next key is
        tried. Free, the refusal stands: unknown stays unknown, for :meth:`find_published`.
        """
        record = self.build_record(post)
        created = parse_time(record["createdAt"])
        for candidate in range(RKEY_CANDIDATES):
            rkey = tid_for(created, idempotency_key, candidate)
            try:
                response = self.call(
                    "POST",
                    XRPC + "com.atproto.repo.createRecord",
                    json={"repo": self.did, "collection": POST_NSID, "rkey": rkey, "record": record},
                )
            except (UnknownOutcome, PermanentlyRejected) as refused:
                if isinstance(refused, PermanentlyRejected) and refused.kind != "duplicate":
                    raise
                try:
                    holder = self._record_at(rkey)
                except PlatformError:
                    raise refused from None  # could not look: the outcome stays what it was
                if holder is None:
                    raise
                if _same_post(holder.get("value") or {}, record["text"], created):
                    self.log.info("%s: %s already holds this post", self.platform, holder["uri"])
                    return PublishedPost(holder["uri"], self.post_url(holder["uri"]), created, reconciled=True)
                self.log.info("%s: record key %s holds another post; trying the next key", self.platform, rkey)
                continue
            uri = response.json()["uri"]
            self.log.info("%s: published %s", self.platform, uri)
            return PublishedPost(uri, self.post_url(uri), created)
        raise PermanentlyRejected(
            f"all {RKEY_CANDIDATES} record keys of this delivery hold other posts",
            kind="duplicate",
            platform=self.platform,
            account=self.account_label,
        )

    def _record_at(self, rkey: str) -> dict[str, Any] | None:
        """This account's post record under ``rkey``, or ``None`` when there is none."""
        try:
            return self.call(
                "GET",
                XRPC + "com.atproto.repo.getRecord",
                params={"repo": self.did, "collection": POST_NSID, "rkey": rkey},
            ).json()
        except PermanentlyRejected as exc:
            if exc.kind == "not_found":
                return None
            raise

    def publish_once(
        self,
        post: OutgoingPost,
        *,
        idempotency_key: str,
        maybe_sent_before: bool = False,
        since: datetime | None = None,
    ) -> PublishedPost:
        """:meth:`PlatformHook.publish_once`, for a post that carries its planned ``created_at``.

        The record key that makes a second copy impossible is minted from ``created_at`` and the
        idempotency key (see :func:`tid_for`), and reconciliation matches ``createdAt``: a time
        taken here would differ on every call, and two calls with one key would post twice.
        """
        if post.created_at is None:
            raise ValueError(
                "a Bluesky post needs its planned created_at (fixed once, sent by every attempt): "
                "without it one idempotency key cannot keep a second call from posting again"
            )
        return super().publish_once(
            post, idempotency_key=idempotency_key, maybe_sent_before=maybe_sent_before, since=since
        )

    def build_record(self, post: OutgoingPost) -> dict[str, Any]:
        """The app.bsky.feed.post record for ``post`` (may upload images and read the parent post)."""
        text = post.text
        images = self._upload_images(post.image_urls) if post.image_urls else []
        link = post.link if post.link and post.link not in text else None
        if link and images:
            text = f"{text}\n{link}"  # one embed per post: the images win, the link goes in the text
            link = None
        created = post.created_at or datetime.now(UTC)
        record: dict[str, Any] = {
            "$type": POST_NSID,
            "text": text,
            "createdAt": iso_millis(created),
            "langs": [post.language] if post.language else [],
        }
        facets = build_facets(text)
        if facets:
            record["facets"] = facets
        if post.reply_to:
            record["reply"] = self._reply_ref(post.reply_to)
        if images:
            record["embed"] = {"$type": "app.bsky.embed.images", "images": images}
        elif link:
            record["embed"] = {
                "$type": "app.bsky.embed.external",
                "external": {"uri": link, "title": link, "description": ""},
            }
        return record

    def _reply_ref(self, parent_uri: str) -> dict[str, Any]:
        """``reply.root`` and ``reply.parent`` strong refs: the parent's own root when it is a reply itself."""
        repo, collection, rkey = split_at_uri(parent_uri)
        parent = self.call(
            "GET", XRPC + "com.atproto.repo.getRecord", params={"repo": repo, "collection": collection, "rkey": rkey}
        ).json()
        parent_ref = {"uri": parent["uri"], "cid": parent["cid"]}
        root = (parent.get("value") or {}).get("reply", {}).get("root") or parent_ref
        return {"root": {"uri": root["uri"], "cid": root["cid"]}, "parent": parent_ref}

    def _upload_images(self, urls: Iterable[str]) -> list[dict[str, Any]]:
        images = []
        for data, mime in self.read_images(urls, max_count=MAX_IMAGES, max_bytes=MAX_IMAGE_BYTES):
            response = self.call(
                "POST",
                XRPC + "com.atproto.repo.uploadBlob",
                data=data,
                headers={"Content-Type": mime},
                retry_unknown=True,  # blobs are content-addressed: uploading twice stores one blob
            )
            images.append({"alt": "", "image": response.json()["blob"]})
        return images

    def delete(self, remote_id: str) -> None:
        repo, collection, rkey = split_at_uri(remote_id)
        if repo not in (self.did, self.handle):
            raise PermanentlyRejected(
                f"{remote_id} is not in this account's repository",
                kind="forbidden",
                platform=self.platform,
                account=self.account_label,
            )
        # Deleting an absent record is a no-op on a PDS, so a retry after a lost answer is safe.
        self.call(
            "POST",
            XRPC + "com.atproto.repo.deleteRecord",
            json={"repo": self.did, "collection": collection, "rkey": rkey},
            retry_unknown=True,
        )

    # ------------------------------------------------------------- reading posts

    def _records(self, since: datetime) -> Iterator[dict[str, Any]]:
        """The account's post records, newest first, down to ``since`` (by the time in the record key)."""
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            params: dict[str, Any] = {"repo": self.did, "collection": POST_NSID, "limit": 100}
            if cursor:
                params["cursor"] = cursor
            page = self.call("GET", XRPC + "com.atproto.repo.listRecords", params=params).json()
            for record in page.get("records", []):
                minted = tid_time(split_at_uri(record["uri"])[2])
                created = parse_time((record.get("value") or {}).get("createdAt"))
                when = minted or created
                if when is not None and when < since:
                    return
                yield record
            cursor = page.get("cursor")
            if not cursor:
                return

    def list_recent_posts(self, since: datetime, *, limit: int = 100) -> list[RemotePost]:
        posts = []
        for record in self._records(since):
            value = record.get("value") or {}
            posts.append(
                RemotePost(
                    record["uri"],
                    value.get("text", ""),
                    parse_time(value.get("createdAt")),
                    self.post_url(record["uri"]),
                )
            )
            if len(posts) >= limit:
                break
        return posts

    def find_published(self, post: OutgoingPost, *, idempotency_key: str, since: datetime) -> PublishedPost | None:
        """The record with this post's text and ``createdAt``, if an earlier attempt created it."""
        want_created = parse_time(iso_millis(post.created_at)) if post.created_at else None
        for record in self._records(since):
            value = record.get("value") or {}
            if not _same_post(value, post.text, want_created):
                continue
            uri = record["uri"]
            self.log.info("%s: found the earlier attempt as %s", self.platform, uri)
            return PublishedPost(uri, self.post_url(uri), parse_time(value.get("createdAt")), reconciled=True)
        return None

    def _post_view(self, remote_id: str) -> dict[str, Any]:
        posts = self.call("GET", XRPC + "app.bsky.feed.getPosts", params={"uris": [remote_id]}).json().get("posts")
        if not posts:
            raise PermanentlyRejected(
                f"post {remote_id} not found (deleted or never created)",
                kind="not_found",
                platform=self.platform,
                account=self.account_label,
            )
        return posts[0]

    def get_post(self, remote_id: str) -> RemotePost:
        view = self._post_view(remote_id)
        record = view.get("record") or {}
        return RemotePost(
            view["uri"], record.get("text", ""), parse_time(record.get("createdAt")), self.post_url(view["uri"])
        )

    def post_metrics(self, remote_id: str) -> PostMetrics:
        view = self._post_view(remote_id)
        extra = {"bookmarks": int(view["bookmarkCount"])} if view.get("bookmarkCount") is not None else {}
        return PostMetrics(
            remote_id=remote_id,
            impressions=None,  # Bluesky publishes no view counts
            likes=int(view.get("likeCount") or 0),
            reposts=int(view.get("repostCount") or 0),
            replies=int(view.get("replyCount") or 0),
            quotes=int(view.get("quoteCount") or 0),
            clicks=None,
            extra=extra,
        )

    # ------------------------------------------------------------- comments

    def comments_since(self, cursor: str | None = None, *, post_ids: Iterable[str] = ()) -> CommentPage:
        """Replies, mentions and quotes newer than ``cursor``.

        The cursor is the newest notification seen: its ``indexedAt`` followed by the URIs seen at
        that same instant (space separated), so equal timestamps are neither lost nor repeated.
        Notifications come newest first; paging stops at the first one the cursor covers.
        """
        seen_at, seen_uris = _parse_cursor(cursor)
        wanted = set(post_ids)
        fresh: list[dict[str, Any]] = []
        page_cursor: str | None = None
        for _ in range(MAX_PAGES):
            params: list[tuple[str, Any]] = [("limit", 100), *(("reasons", r) for r in COMMENT_REASONS)]
            if page_cursor:
                params.append(("cursor", page_cursor))
            page = self.call("GET", XRPC + "app.bsky.notification.listNotifications", params=params).json()
            done = False
            for item in page.get("notifications", []):
                indexed = item.get("indexedAt", "")
                if seen_at and (indexed < seen_at or (indexed == seen_at and item["uri"] in seen_uris)):
                    done = True
                    break
                fresh.append(item)
            page_cursor = page.get("cursor")
            if done or not page_cursor or seen_at is None:
                break  # without a cursor, one page is "all recent ones"
        comments = [c for c in (_comment(item) for item in reversed(fresh)) if not wanted or c.post_id in wanted]
        return CommentPage(comments, _next_cursor(fresh, seen_at, seen_uris) or cursor)


# --------------------------------------------------------------------------- helpers


def _same_post(value: dict[str, Any], text: str, created: datetime | None) -> bool:
    """Whether a stored record is the post with ``text`` and ``createdAt`` (``None``: any time)."""
    if normalized_text(value.get("text", "")) != normalized_text(text):
        return False
    return created is None or parse_time(value.get("createdAt")) == created


def _nsid(path: str) -> str:
    return path.split(XRPC, 1)[-1].split("?", 1)[0]


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _parse_cursor(cursor: str | None) -> tuple[str | None, set[str]]:
    if not cursor:
        return None, set()
    first, *uris = cursor.split(" ")
    return first, set(uris)


def _next_cursor(fresh: list[dict[str, Any]], seen_at: str | None, seen_uris: set[str]) -> str | None:
    if not fresh:
        return None
    newest = max(item.get("indexedAt", "") for item in fresh)
    uris = {item["uri"] for item in fresh if item.get("indexedAt") == newest}
    if newest == seen_at:
        uris |= seen_uris
    return " ".join([newest, *sorted(uris)])


def _comment(item: dict[str, Any]) -> Comment:
    record = item.get("record") or {}
    author = item.get("author") or {}
    handle = author.get("handle") or author.get("did") or "unknown"
    reply = record.get("reply") or {}
    post_id = (reply.get("parent") or {}).get("uri") or item.get("reasonSubject")
    if item.get("reason") == "quote":
        embedded = (record.get("embed") or {}).get("record") or {}
        post_id = embedded.get("uri") or post_id
    try:
        _, _, rkey = split_at_uri(item["uri"])
        url = f"https://bsky.app/profile/{handle}/post/{rkey}"
    except ValueError:
        url = None
    return Comment(
        remote_id=item["uri"],
        text=record.get("text", ""),
        author=handle,
        created_at=parse_time(record.get("createdAt")) or parse_time(item.get("indexedAt")),
        post_id=post_id,
        url=url,
    )
