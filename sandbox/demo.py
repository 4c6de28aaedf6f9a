"""Demo data for the sandbox, in Japanese: what a city's accounts look like after a few weeks.

Seeded for every official account already registered (``/_admin/accounts``): past posts with
metrics, residents' comments addressed to various departments (roads, garbage, child care,
tourism, disaster, the PR section), a few hostile ones, a comment storm on one post, and look-alike accounts
imitating the city. Deterministic (fixed seed) so the demo and the tests see the same data.
"""

from __future__ import annotations

import random
from datetime import timedelta

from sandbox.state import Account, Comment, Post, SandboxState, utcnow

PAST_POSTS = [
    "【お知らせ】年末年始のごみ収集日程を掲載しました。",
    "市民まつりを開催します。ステージや模擬店をお楽しみください。",
    "子育て支援センターの今月のイベント情報です。",
    "防災訓練を実施します。お近くの避難所を確認しましょう。",
    "梨の直売所マップを公開しました。",
    "道路工事による通行止めのお知らせです。",
]

COMMENTS = [
    ("resident_a", "駅前の歩道に大きな穴が空いていて危ないです。道路の補修をお願いします。"),
    ("resident_b", "粗大ごみの収集日はいつですか？分別の方法も知りたいです。"),
    ("resident_c", "保育園の空き状況はどこで確認できますか。待機児童が心配です。"),
    ("resident_d", "観光マップがとても見やすかったです！梨狩りに行きます。"),
    ("resident_e", "避難所の場所が分かりにくいです。防災マップを配ってほしい。"),
    ("resident_f", "街灯が切れていて夜道が暗いです。"),
    ("resident_g", "学童の申し込み方法を教えてください。"),
    ("resident_h", "いつも役立つ情報をありがとうございます。"),
    ("resident_i", "市報とホームページでイベントの日付が違います。どちらが正しいですか？"),
]

HOSTILE = [
    ("angry_1", "ふざけるな。税金の無駄遣いだ。担当者は辞めろ。"),
    ("angry_2", "こんな対応しかできないなら市役所なんていらない。最悪だ。"),
]

STORM = [
    "説明になっていない。ちゃんと答えろ。",
    "また炎上してるじゃん。市は何を考えてるの？",
    "これは酷い。謝罪しろ。",
    "拡散します。ありえない対応。",
    "市長は説明責任を果たせ。",
]

LOOKALIKE_SUFFIXES = ("_official", "_koho", "1", "_jp")


def seed(state: SandboxState) -> dict:
    rng = random.Random(20141231)
    now = utcnow()
    official = [a for a in list(state.accounts.values()) if a.token is not None or a.password is not None]
    posts = comments = lookalikes = 0
    storm_target: Post | None = None
    for account in official:
        account.followers = account.followers or rng.randint(800, 20000)
        for i, text in enumerate(PAST_POSTS):
            created = now - timedelta(days=3 * (len(PAST_POSTS) - i), hours=rng.randint(0, 8))
            impressions = rng.randint(300, 8000)
            post = state.add_post(
                Post(
                    platform=account.platform,
                    post_id=state.next_id(),
                    account_id=account.account_id,
                    text=text,
                    created_at=created,
                    metrics={
                        "impressions": impressions,
                        "likes": impressions // rng.randint(20, 60),
                        "reposts": impressions // rng.randint(80, 200),
                        "replies": 0,
                        "quotes": 0,
                        "clicks": impressions // rng.randint(30, 90),
                    },
                )
            )
            posts += 1
            if account.platform in ("x", "facebook") and storm_target is None and i == len(PAST_POSTS) - 1:
                storm_target = post
        if account.platform == "line":
            continue  # LINE has no public comments: residents write to the bot instead
        recent = state.account_posts(account.platform, account.account_id)
        for author, text in rng.sample(COMMENTS, k=4) + rng.sample(HOSTILE, k=1):
            target = rng.choice(recent)
            state.add_comment(
                Comment(
                    platform=account.platform,
                    comment_id=state.next_id(),
                    post_id=target.post_id,
                    account_id=account.account_id,
                    author=author,
                    text=text,
                    created_at=target.created_at + timedelta(minutes=rng.randint(5, 600)),
                )
            )
            target.metrics["replies"] = target.metrics.get("replies", 0) + 1
            comments += 1
        lookalikes += _lookalikes(state, account, rng)
    if storm_target is not None:
        for n in range(40):
            state.add_comment(
                Comment(
                    platform=storm_target.platform,
                    comment_id=state.next_id(),
                    post_id=storm_target.post_id,
                    account_id=storm_target.account_id,
                    author=f"user{rng.randint(1000, 9999)}",
                    text=rng.choice(STORM),
                    created_at=now - timedelta(minutes=40 - n),
                )
            )
            comments += 1
        storm_target.metrics["replies"] = storm_target.metrics.get("replies", 0) + 40
    return {
        "posts": posts,
        "comments": comments,
        "lookalikes": lookalikes,
        "storm_post": storm_target.post_id if storm_target else None,
    }


def _lookalikes(state: SandboxState, account: Account, rng: random.Random) -> int:
    """Two accounts per official one whose handles and names imitate it (no token: not ours)."""
    made = 0
    base = account.handle.lstrip("@").split("@")[0].split(".")[0]
    for suffix in rng.sample(LOOKALIKE_SUFFIXES, k=2):
        handle = f"{base}{suffix}"
        if account.platform == "bluesky":
            handle = f"{handle}.bsky.social"
        if state.account_by_handle(account.platform, handle):
            continue
        state.add_account(
            Account(
                platform=account.platform,
                account_id=(f"did:plc:fake{state.next_id()}" if account.platform == "bluesky" else state.next_id()),
                handle=handle,
                display_name=f"{account.display_name}（公式）",
                followers=rng.randint(3, 300),
            )
        )
        made += 1
    return made
