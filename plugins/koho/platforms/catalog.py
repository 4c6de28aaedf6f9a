"""What Airflow and the UI need to know about each platform, without importing its hook.

Airflow reads Koho's provider metadata while it is itself being imported, so building the
connection forms must not import hook modules (they import Airflow). Hooks take these values
from here through :class:`koho.platforms.base.PlatformHook` (``__init_subclass__``); this is
the one place they are written.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PlatformInfo:
    name: str
    display_name: str
    hook: str  # "module:Class"
    hook_name: str
    default_host: str  # the real API; empty where every instance differs (Mastodon)
    extra_fields: dict[str, tuple[str, str]] = field(default_factory=dict)
    secret_extra_fields: frozenset[str] = frozenset()

    @property
    def conn_type(self) -> str:
        return f"koho_{self.name}"


_TOKEN_EXPIRES = ("Token expires at", "ISO 8601 time the token expires, when the API cannot tell.")
_GRAPH_COMMON = {
    "api_version": ("Graph API version", "For example v21.0; the path prefix of every call."),
    "comment_window_days": ("Comment window (days)", "How far back own posts are scanned for comments."),
    "post_metrics": (
        "Post insight metrics",
        "JSON list or comma-separated insight metric names; Meta retires names, so keep this list current.",
    ),
    "throttle_wait_seconds": ("Throttle wait (s)", "Wait after a throttle error that names no reset time."),
    "token_expires_at": _TOKEN_EXPIRES,
}
_CONTAINER_COMMON = {
    **_GRAPH_COMMON,
    "container_poll_attempts": ("Container poll attempts", "Status checks before giving up for this try."),
    "container_poll_seconds": ("Container poll interval (s)", "Wait between status checks of a container."),
    "search_suffixes": ("Search suffixes", "Comma-separated username endings tried by search_accounts."),
}

PLATFORMS: dict[str, PlatformInfo] = {
    "x": PlatformInfo(
        name="x",
        display_name="X",
        hook="koho.platforms.x:XHook",
        hook_name="Koho: X",
        default_host="https://api.x.com",
        extra_fields={
            "account_id": ("User id", "The account's numeric X user id; looked up with GET /2/users/me when empty."),
            "consumer_key": ("API key (OAuth 1.0a)", "The app's consumer key, for OAuth 1.0a user context."),
            "consumer_secret": ("API key secret (OAuth 1.0a)", "The app's consumer secret."),
            "access_token_secret": ("Access token secret (OAuth 1.0a)", "The user's access token secret."),
            "token_expires_at": ("Token expires at", "ISO 8601 time the OAuth 2.0 token expires, if known."),
            "lookalike_handles": (
                "Look-alike candidates",
                "Handles to check when the access tier has no user search (comma separated).",
            ),
        },
        secret_extra_fields=frozenset(["access_token_secret", "consumer_secret"]),
    ),
    "facebook": PlatformInfo(
        name="facebook",
        display_name="Facebook Page",
        hook="koho.platforms.facebook:FacebookHook",
        hook_name="Koho: Facebook Page",
        default_host="https://graph.facebook.com",
        extra_fields={
            **_GRAPH_COMMON,
            "account_id": ("Page id", "The Page's numeric id (asked from /me when empty)."),
        },
    ),
    "instagram": PlatformInfo(
        name="instagram",
        display_name="Instagram",
        hook="koho.platforms.instagram:InstagramHook",
        hook_name="Koho: Instagram",
        default_host="https://graph.facebook.com",
        extra_fields={
            **_CONTAINER_COMMON,
            "account_id": ("Instagram user id", "The IG user id of the professional account."),
        },
    ),
    "threads": PlatformInfo(
        name="threads",
        display_name="Threads",
        hook="koho.platforms.threads:ThreadsHook",
        hook_name="Koho: Threads",
        default_host="https://graph.threads.net",
        extra_fields={
            **_CONTAINER_COMMON,
            "account_id": ("Threads user id", "The Threads user id (asked from /me when empty)."),
            "api_version": ("Threads API version", "v1.0 unless Meta publishes a newer one."),
        },
    ),
    "line": PlatformInfo(
        name="line",
        display_name="LINE",
        hook="koho.platforms.line:LineHook",
        hook_name="Koho: LINE Official Account",
        default_host="https://api.line.me",
        extra_fields={
            "account_id": ("Bot user ID", "The bot's user ID (U...). Read from /v2/bot/info when empty."),
            "channel_secret": ("Channel secret", "Verifies the X-Line-Signature of webhook calls."),
            "push_to": (
                "Push target (optional)",
                "A user, group or room ID: send push messages there instead of broadcasting (e.g. a staff test group).",
            ),
            "token_expires_at": ("Token expires", "ISO time, for tokens the verify endpoint reports without an end."),
        },
        secret_extra_fields=frozenset(["channel_secret"]),
    ),
    "youtube": PlatformInfo(
        name="youtube",
        display_name="YouTube",
        hook="koho.platforms.youtube:YouTubeHook",
        hook_name="Koho: YouTube",
        default_host="https://www.googleapis.com",
        extra_fields={
            "account_id": ("Channel ID", "The channel id (UC...). Asked from the API (mine=true) when empty."),
            "api_key": ("API key", "Optional Google API key for public reads when no OAuth token is set."),
            "refresh_token": ("OAuth refresh token", "Renews the one-hour access token automatically."),
            "client_id": ("OAuth client id", "The Google Cloud OAuth client the refresh token belongs to."),
            "client_secret": ("OAuth client secret", "Secret of that OAuth client."),
            "token_uri": ("Token endpoint", "Where tokens are refreshed; default https://oauth2.googleapis.com/token."),
            "token_expires_at": ("Token expires at", "ISO 8601 time the access token expires, if known."),
        },
        secret_extra_fields=frozenset(["api_key", "client_secret", "refresh_token"]),
    ),
    "bluesky": PlatformInfo(
        name="bluesky",
        display_name="Bluesky",
        hook="koho.platforms.bluesky:BlueskyHook",
        hook_name="Koho: Bluesky",
        default_host="https://bsky.social",
        extra_fields={
            "account_id": ("DID", "The account's DID (did:plc:...). Learned at login when empty."),
            "token_expires_at": (
                "App password expires",
                "Optional ISO time when staff plan to rotate the app password (Bluesky app passwords do not expire).",
            ),
        },
    ),
    "mastodon": PlatformInfo(
        name="mastodon",
        display_name="Mastodon",
        hook="koho.platforms.mastodon:MastodonHook",
        hook_name="Koho: Mastodon",
        default_host="",
        extra_fields={
            "account_id": (
                "Account id",
                "The account's id on the instance; looked up with verify_credentials when empty.",
            ),
            "visibility": ("Visibility", "public (default), unlisted or private."),
            "token_expires_at": ("Token expires at", "ISO 8601 time the access token expires, if it does."),
        },
    ),
}
