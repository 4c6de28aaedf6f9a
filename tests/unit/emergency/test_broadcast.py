"""The emergency broadcast: form checks (nothing posted on a form mistake), the same words on every
account (split only where a limit forces it), parallel sending with fast retries, follow-ups as
replies, and the all-clear taking the website banner down. Platforms are fakes here; the real
Airflow + sandbox run is in tests/e2e/test_emergency_broadcast.py."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from koho.config import load_config
from koho.emergency import broadcast
from koho.emergency.broadcast import Original, send_all, validate_emergency
from koho.ledger.models import CalendarEntry, Delivery
from koho.platforms.errors import PermanentlyRejected, TransientError
from koho.platforms.types import PublishedPost
from tests.unit.calendar.calendar_helpers import ACCOUNTS, DEPARTMENTS, POLICY
from tests.unit.posting.conftest import NOW

CONFIRM = "緊急配信"
MESSAGE = (
    "【緊急】こほ市に大雨特別警報が発表されました。直ちに命を守る行動をとってください。避難所は市内全小学校です。"
    "防災無線の放送にも注意してください。"
)


@pytest.fixture
def city(tmp_path) -> object:
    """The test registry with the website published into tmp_path, LINE limited to 70 (to force shortening)."""
    directory = tmp_path / "config"
    directory.mkdir()
    (directory / "departments.yaml").write_text(DEPARTMENTS, encoding="utf-8")
    policy = yaml.safe_load(POLICY.format(holidays="warn"))
    policy["channels"]["website"]["output_dir"] = str(tmp_path / "website")
    policy["platform_limits"] = {"line": 70}
    policy["crisis_emails"] = ["kiki@city.example.jp"]
    (directory / "policy.yaml").write_text(yaml.safe_dump(policy, allow_unicode=True), encoding="utf-8")
    (directory / "accounts.yaml").write_text(
        yaml.safe_dump({"accounts": ACCOUNTS}, allow_unicode=True), encoding="utf-8"
    )
    config = load_config(directory)
    assert not config.problems, config.problems
    return config


class FakePlatforms:
    """Hooks for every account, recording posts; ``fail`` maps account handle -> errors to raise first."""

    def __init__(self):
        self.posts: list[dict] = []
        self.fail: dict[str, list[Exception]] = {}
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.barrier = None

    def factory(self, platform: str, conn_id: str, **options):
        """A recording hook; ``options`` (the account's write budget) do not apply to a fake."""
        return _Hook(self, platform, conn_id)


class _Hook:
    def __init__(self, fake: FakePlatforms, platform: str, conn_id: str):
        self.fake, self.platform, self.conn_id = fake, platform, conn_id

    def publish_once(self, post, *, idempotency_key, maybe_sent_before, since):
        with self.fake.lock:
            queue = self.fake.fail.get(self.conn_id) or []
            error = queue.pop(0) if queue else None
            self.fake.in_flight += 1
            self.fake.max_in_flight = max(self.fake.max_in_flight, self.fake.in_flight)
        try:
            if self.fake.barrier is not None:
                self.fake.barrier.wait(timeout=5)
            if error:
                raise error
            with self.fake.lock:
                remote = f"{self.platform}-{len(self.fake.posts) + 1}"
                self.fake.posts.append(
                    {
                        "conn": self.conn_id,
                        "platform": self.platform,
                        "text": post.text,
                        "reply_to": post.reply_to,
                        "images": post.image_urls,
                        "remote": remote,
                        "key": idempotency_key,
                        "maybe_sent_before": maybe_sent_before,
                    }
                )
            return PublishedPost(remote, f"https://{self.platform}.example/{remote}")
        finally:
            with self.fake.lock:
                self.fake.in_flight -= 1


def form(**changes):
    return {"message": MESSAGE, "confirmation": CONFIRM, "targets": ["all", "website"], **changes}


def check(city, posting_settings, entry_id="emergency-1", lookup=lambda _id: None, **changes):
    return validate_emergency(
        form(**changes), city, posting_settings, entry_id=entry_id, triggered_by="crisis", lookup=lookup
    )


# -- the form ---------------------------------------------------------------------------------

EMERGENCY_BAD = [
    ("confirmation mismatch", {"confirmation": "緊急"}, "confirmation", "type exactly '緊急配信'"),
    ("confirmation missing", {"confirmation": None}, "confirmation", "type exactly"),
    ("confirmation with different width", {"confirmation": "緊急配信 確認"}, "confirmation", "type exactly"),
    ("empty message", {"message": "  "}, "message", "must not be empty"),
    ("message with markup", {"message": "<script>alert(1)</script>避難"}, "message", "looks like HTML"),
    ("message too long", {"message": "あ" * 5001}, "message", "at most 5000"),
    ("bad link scheme", {"link": "ftp://city.example.jp/x"}, "link", "https://"),
    ("unknown target", {"targets": ["city-z"]}, "targets[0]", "unknown account or group"),
    ("unknown severity", {"severity": "extreme"}, "severity", "not allowed"),
    ("unknown kind", {"kind": "cancel"}, "kind", "not allowed"),
    ("unknown field", {"sevrity": "high"}, "sevrity", "unknown field"),
    ("follow-up of nothing", {"follow_up_of": "emergency-nope", "kind": "update"}, "follow_up_of", "no entry"),
    (
        "follow-up needs a kind",
        {"follow_up_of": "emergency-0", "kind": "alert"},
        "kind",
        "update (続報) or an all_clear",
    ),
    ("follow-up of an ad-hoc post", {"follow_up_of": "adhoc-1", "kind": "update"}, "follow_up_of", "not an emergency"),
    ("no targets at all", {"targets": []}, "targets", "no account and no website"),
]


def _lookup(entry_id):
    return {
        "emergency-0": Original("emergency-0", "emergency", 1, "t"),
        "adhoc-1": Original("adhoc-1", "adhoc", 1, "t"),
    }.get(entry_id)


@pytest.mark.parametrize(
    ("changes", "field", "reason"), [c[1:] for c in EMERGENCY_BAD], ids=[c[0] for c in EMERGENCY_BAD]
)
def test_emergency_form_mistakes_stop_everything(city, posting_settings, changes, field, reason):
    result = check(city, posting_settings, lookup=_lookup, **changes)
    assert not result.ok
    assert any((p.where.field or "").startswith(field) and reason in p.message for p in result.errors), [
        str(p) for p in result.errors
    ]


def test_defaults_reach_every_active_account_and_the_website(city, posting_settings):
    result = validate_emergency({"message": MESSAGE, "confirmation": CONFIRM}, city, posting_settings, entry_id="e")
    assert result.ok
    assert result.channels == ["website"]
    assert {a.id for a in result.accounts} == {
        "city-x",
        "city-line",
        "city-instagram",
        "kosodate-line",
        "bousai-x",
        "kanko-instagram",
    }


def test_a_channel_is_a_target_named_in_any_spelling_and_refused_when_not_configured(city, posting_settings):
    website_only = check(city, posting_settings, targets=[" Website "])
    assert website_only.ok and website_only.channels == ["website"] and website_only.accounts == []
    assert website_only.payload()["channels"] == ["social", "website"]
    no_policy = type(city)(city.accounts, city.departments, None, [])
    refused = check(no_policy, posting_settings, targets=["website"])
    assert [p.message for p in refused.errors] == [
        "the website channel is not configured (policy.yaml channels.website)"
    ]


def test_stand_in_image_only_for_image_only_platforms(city, posting_settings):
    result = check(city, posting_settings)
    assert result.images == ["ok.png"] and result.image_platforms == ["instagram"]


# -- sending ----------------------------------------------------------------------------------


def test_same_words_everywhere_in_parallel_no_caps_no_quiet_hours(city, posting_settings, ledger):
    fake = FakePlatforms()
    fake.barrier = threading.Barrier(6)  # all six accounts must be in flight at once, or this times out
    late_night = NOW.replace(hour=14)  # 23:00 JST: inside quiet hours, and every account already at its cap
    result = send_all(
        ledger,
        check(city, posting_settings),
        city,
        posting_settings,
        run_id="r1",
        hook_factory=fake.factory,
        now=late_night,
    )
    assert result["published"] == result["total"] == 7, result  # 6 accounts + website
    assert fake.max_in_flight == 6, "accounts are sent in parallel"
    by_conn = {}
    for post in fake.posts:
        by_conn.setdefault(post["conn"], []).append(post)
    # X (limit 280 weighted) takes it as it is; LINE limited to 70 gets it cut at a sentence with the website link
    assert by_conn["conn_city_x"][0]["text"] == MESSAGE
    line = by_conn["conn_city_line"][0]["text"]
    assert line.endswith("news/news/emergency-1.html") and "…" in line
    assert MESSAGE.startswith(line.split("…")[0])  # a prefix of the very same words, never reworded
    insta = by_conn["conn_city_instagram"][0]
    assert insta["images"] and insta["images"][0].endswith("/media/ok.png")
    assert not by_conn["conn_city_x"][0]["images"], "the stand-in image is for Instagram only"
    website = Path(city.policy.channels.website.output_dir)
    assert "emergency-1" in (website / "emergency.html").read_text(encoding="utf-8")


def test_thread_keeps_the_original_words_in_order(city, posting_settings, ledger):
    fake = FakePlatforms()
    long_message = "。".join(f"第{i}避難所は開設済みです" for i in range(1, 30)) + "。"
    result = send_all(
        ledger,
        check(city, posting_settings, message=long_message, targets=["city-x"]),
        city,
        posting_settings,
        run_id="r1",
        hook_factory=fake.factory,
        now=NOW,
    )
    assert result["published"] == 1
    parts = [p for p in fake.posts if p["conn"] == "conn_city_x"]
    assert len(parts) > 1
    import re

    body = "".join(re.sub(r" \(\d+/\d+\)$", "", p["text"]) for p in parts)
    assert body.replace(" ", "") == long_message.replace(" ", "")
    assert [p["reply_to"] for p in parts[1:]] == [p["remote"] for p in parts[:-1]], "each part answers the previous"


def test_passing_failures_are_retried_quickly_and_permanent_ones_reported(city, posting_settings, ledger):
    fake = FakePlatforms()
    fake.fail["conn_city_x"] = [TransientError("503", platform="x", status=503)] * 2
    fake.fail["conn_bousai_x"] = [PermanentlyRejected("forbidden", platform="x", status=403, kind="forbidden")]
    naps = []
    result = send_all(
        ledger,
        check(city, posting_settings),
        city,
        posting_settings,
        run_id="r1",
        hook_factory=fake.factory,
        now=NOW,
        sleep=naps.append,
    )
    rows = {a["account_id"]: a for a in result["accounts"]}
    assert rows["city-x"]["status"] == "published" and rows["city-x"]["url"]
    assert rows["bousai-x"]["status"] == "failed" and "forbidden" in rows["bousai-x"]["error"]
    assert naps == [1.0, 0.1], "backoff starts at 1 s and is capped by emergency_retry_max_delay_seconds"
    assert sum(p["conn"] == "conn_city_x" for p in fake.posts) == 1


def test_running_twice_posts_once(city, posting_settings, ledger):
    """A retried task plans the same deliveries (same keys) and finds them published."""
    fake = FakePlatforms()
    first = send_all(
        ledger, check(city, posting_settings), city, posting_settings, run_id="r1", hook_factory=fake.factory, now=NOW
    )
    again = send_all(
        ledger, check(city, posting_settings), city, posting_settings, run_id="r1", hook_factory=fake.factory, now=NOW
    )
    assert first["published"] == again["published"] == 7
    assert len(fake.posts) == 6  # the website is not a hook


def test_follow_up_answers_the_original_and_all_clear_takes_the_banner_down(city, posting_settings, ledger):
    fake = FakePlatforms()
    long_message = "。".join(f"第{i}避難所は開設済みです" for i in range(1, 30)) + "。"
    send_all(
        ledger,
        check(city, posting_settings, message=long_message),
        city,
        posting_settings,
        run_id="r1",
        hook_factory=fake.factory,
        now=NOW,
    )
    original_x = [p for p in fake.posts if p["conn"] == "conn_city_x"]
    website = Path(city.policy.channels.website.output_dir)
    assert "emergency-1" in (website / "emergency.html").read_text(encoding="utf-8")

    lookup = broadcast.lookup_in(ledger)
    clear = check(
        city,
        posting_settings,
        entry_id="emergency-2",
        lookup=lookup,
        message="大雨特別警報は解除されました。",
        follow_up_of="emergency-1",
        kind="all_clear",
    )
    assert clear.ok, clear.errors
    result = send_all(
        ledger, clear, city, posting_settings, run_id="r2", hook_factory=fake.factory, now=NOW + timedelta(hours=3)
    )
    assert result["published"] == 7
    followups = [p for p in fake.posts if p["text"].startswith("大雨特別警報は解除")]
    by_conn = {p["conn"]: p for p in followups}
    assert by_conn["conn_city_x"]["reply_to"] == original_x[-1]["remote"], "answers the original's last part"
    assert by_conn["conn_city_line"]["reply_to"] is None, "LINE has no replies: a new post"
    banner = website / "emergency.html"
    assert not banner.exists() or "emergency-1" not in banner.read_text(encoding="utf-8")
    with ledger.session(readonly=True) as session:
        entry = session.get(CalendarEntry, "emergency-2")
        parents = session.scalars(
            select(Delivery.parent_delivery_id).where(
                Delivery.entry_id == "emergency-2", Delivery.account_id == "city-x"
            )
        ).all()
    assert entry.origin == "emergency" and entry.payload["follow_up_of"] == "emergency-1"
    assert parents[0] is not None


def test_summary_mail_lists_every_account(city, posting_settings, ledger, mailbox, monkeypatch):
    from tests.conftest import smtp_connection

    box, port = mailbox
    smtp_connection(monkeypatch, port)
    fake = FakePlatforms()
    fake.fail["conn_bousai_x"] = [PermanentlyRejected("forbidden", platform="x", status=403, kind="forbidden")]
    result = send_all(
        ledger,
        check(city, posting_settings, requested_by="<b>危機管理課</b>"),
        city,
        posting_settings,
        run_id="r1",
        hook_factory=fake.factory,
        now=NOW,
    )
    to = broadcast.mail_summary(result, city, ledger)
    assert to == ["kiki@city.example.jp", "koho@city.example.jp"]
    assert sorted(m["To"] for m in box.messages) == to  # one mail per recipient
    subject, html = box.subjects()[0], box.messages[0].get_body(("html",)).get_content()
    assert "6/7 published" in subject and "1 failed" in subject
    for row in result["accounts"]:
        assert row["account_id"] in html
    assert "forbidden" in html
    assert "<b>危機管理課</b>" not in html  # escaped
    assert broadcast.mail_summary(result, city, ledger) == to and len(box.messages) == 2  # a retry mails no one


def test_a_retried_task_reconciles_what_its_dead_try_left_sending(city, posting_settings, ledger):
    """The first try died mid-call on city-x (left 'sending'); the retry of the same run reconciles
    it (maybe_sent_before) after a minute instead of waiting out the 15-minute staleness limit."""
    from koho.delivery.sender import OWN_RECLAIM_AFTER
    from koho.ledger import deliveries
    from koho.timeutil import utcnow

    fake = FakePlatforms()
    broadcast.plan(ledger, check(city, posting_settings), city, now=NOW)
    with ledger.session() as session:
        (x,) = session.scalars(select(Delivery).where(Delivery.account_id == "city-x")).all()
        # the try that died, just over a minute ago (the sender's claims use the real clock)
        deliveries.claim_for_sending(session, x.id, "run-1", now=utcnow() - OWN_RECLAIM_AFTER - timedelta(seconds=10))
    result = send_all(
        ledger,
        check(city, posting_settings),
        city,
        posting_settings,
        run_id="run-1",
        hook_factory=fake.factory,
        now=NOW + timedelta(seconds=10),
        retry_of_task=True,
    )
    assert result["published"] == result["total"] == 7
    (post,) = [p for p in fake.posts if p["conn"] == "conn_city_x"]
    assert post["maybe_sent_before"] is True
