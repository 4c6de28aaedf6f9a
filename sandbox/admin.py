"""The sandbox's admin API: seed accounts and comments, inject faults, tune limits, inspect state.

Tests and the demo drive the sandbox only through these endpoints, so the same calls work
against a sandbox started by ``make run`` or by a test fixture.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from sandbox.faults import Fault
from sandbox.state import Account, Comment, SandboxState, utcnow

router = APIRouter(prefix="/_admin", tags=["admin"])


def _state(request: Request) -> SandboxState:
    return request.app.state.sandbox


class AccountIn(BaseModel):
    platform: str
    handle: str
    token: str | None = None
    password: str | None = None
    display_name: str = ""
    account_id: str | None = None
    followers: int = 0
    token_expires_at: datetime | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class FaultIn(BaseModel):
    platform: str
    kind: str
    account: str | None = None
    operation: str = "*"
    count: int | None = 1
    rate: float | None = None
    delay: float = 0.0
    seed: int | None = None


class LimitIn(BaseModel):
    platform: str
    bucket: str
    limit: int = Field(gt=0)
    window_seconds: float = Field(gt=0)


class CommentIn(BaseModel):
    platform: str
    account: str  # official account id or handle the comment is addressed to
    author: str
    text: str
    post_id: str | None = None
    created_at: datetime | None = None


class HistoryAccountIn(BaseModel):
    platform: str
    handle: str  # the sandbox account's handle
    koho_id: str  # the registry id (accounts.yaml): picks the account's story and seeds its history


class HistoryIn(BaseModel):
    accounts: list[HistoryAccountIn]
    end: date | None = None  # last day of the history (Asia/Tokyo); today when unset
    seed: int = 2026


#: How long a reset waits for platform requests still being answered (slow faults) to finish.
RESET_WAIT_SECONDS = 5.0


@router.post("/reset")
def reset(request: Request) -> dict:
    state = _state(request)
    idle = state.wait_idle(RESET_WAIT_SECONDS)
    state.reset()
    return {"ok": True, "requests_still_running": not idle}


def _account_id(state: SandboxState, item: AccountIn) -> str:
    if item.account_id:
        return item.account_id
    if item.platform == "bluesky":
        return f"did:plc:{item.handle.split('.')[0].replace('_', '')[:24].lower()}{state.next_id()}"
    return state.next_id()


@router.post("/accounts")
def add_accounts(request: Request, items: list[AccountIn]) -> list[dict]:
    state = _state(request)
    out = []
    for item in items:
        existing = state.account_by_handle(item.platform, item.handle)
        acc = existing or Account(platform=item.platform, account_id=_account_id(state, item), handle=item.handle)
        acc.display_name = item.display_name or acc.display_name or item.handle
        acc.token = item.token if item.token is not None else acc.token
        acc.password = item.password if item.password is not None else acc.password
        acc.followers = item.followers or acc.followers
        acc.token_expires_at = item.token_expires_at or acc.token_expires_at
        acc.token_revoked = False
        acc.extra.update(item.extra)
        state.add_account(acc)
        out.append({"platform": acc.platform, "handle": acc.handle, "account_id": acc.account_id})
    return out


@router.get("/accounts")
def list_accounts(request: Request, platform: str | None = None) -> list[dict]:
    state = _state(request)
    return [
        {
            "platform": a.platform,
            "account_id": a.account_id,
            "handle": a.handle,
            "display_name": a.display_name,
            "followers": a.followers,
            "official": a.token is not None or a.password is not None,
        }
        for a in state.accounts.values()
        if platform in (None, a.platform)
    ]


@router.post("/accounts/{platform}/{handle}/revoke")
def revoke_token(request: Request, platform: str, handle: str) -> dict:
    acc = _state(request).account_by_handle(platform, handle)
    if acc is None:
        raise HTTPException(404, f"no {platform} account '{handle}'")
    acc.token_revoked = True
    return {"ok": True}


@router.post("/faults")
def add_fault(request: Request, item: FaultIn) -> dict:
    try:
        fault = _state(request).faults.add(Fault(**item.model_dump()))
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    return fault.public()


@router.get("/faults")
def list_faults(request: Request) -> list[dict]:
    return [f.public() for f in _state(request).faults.list()]


@router.delete("/faults")
def clear_faults(request: Request) -> dict:
    _state(request).faults.clear()
    return {"ok": True}


@router.put("/ratelimits")
def set_limit(request: Request, item: LimitIn) -> dict:
    _state(request).limits.configure(item.platform, item.bucket, item.limit, item.window_seconds)
    return item.model_dump()


@router.get("/posts")
def list_posts(
    request: Request, platform: str | None = None, account: str | None = None, include_deleted: bool = False
) -> list[dict]:
    """Every post the sandbox holds: tests count these to prove "exactly once"."""
    state = _state(request)
    out = []
    for plat, posts in state.posts.items():
        if platform not in (None, plat):
            continue
        for p in posts.values():
            if p.deleted and not include_deleted:
                continue
            acc = state.account(plat, p.account_id)
            if account not in (None, p.account_id, acc.handle if acc else None):
                continue
            out.append(
                {
                    "platform": plat,
                    "post_id": p.post_id,
                    "account_id": p.account_id,
                    "handle": acc.handle if acc else None,
                    "text": p.text,
                    "link": p.link,
                    "media": p.media,
                    "reply_to": p.reply_to,
                    "deleted": p.deleted,
                    "created_at": p.created_at.isoformat(),
                }
            )
    return out


@router.post("/comments")
def add_comment(request: Request, item: CommentIn) -> dict:
    state = _state(request)
    acc = state.account(item.platform, item.account) or state.account_by_handle(item.platform, item.account)
    if acc is None:
        raise HTTPException(404, f"no {item.platform} account '{item.account}'")
    comment = state.add_comment(
        Comment(
            platform=item.platform,
            comment_id=state.next_id(),
            post_id=item.post_id,
            account_id=acc.account_id,
            author=item.author,
            text=item.text,
            created_at=item.created_at or utcnow(),
        )
    )
    return {"comment_id": comment.comment_id}


@router.get("/stats")
def stats(request: Request) -> dict:
    state = _state(request)
    return {
        "counts": [
            {"platform": p, "account_id": a, "status": s, "count": n}
            for (p, a, s), n in sorted(state.stats.counts.items())
        ],
        "rate_limited": [{"platform": p, "account_id": a, "at": t} for p, a, t in state.stats.rejections],
    }


@router.post("/demo")
def seed_demo(request: Request) -> dict:
    """Load the Japanese demo data (residents' comments, metrics, look-alike accounts)."""
    from sandbox.demo import seed

    return seed(_state(request))


@router.post("/history")
def seed_history(request: Request, item: HistoryIn) -> list[dict]:
    """Give accounts their 400-day story history (past posts with counters, followers, daily figures)."""
    from sandbox.history import TOKYO
    from sandbox.history import seed_history as seed

    state = _state(request)
    end = item.end or utcnow().astimezone(TOKYO).date()
    out = []
    for entry in item.accounts:
        account = state.account_by_handle(entry.platform, entry.handle)
        if account is None:
            raise HTTPException(404, f"no {entry.platform} account '{entry.handle}'")
        history = seed(state, account, entry.koho_id, end=end, seed=item.seed)
        out.append(
            {
                "koho_id": entry.koho_id,
                "story": history.story,
                "posts": len(history.posts),
                "followers": account.followers,
            }
        )
    return out
