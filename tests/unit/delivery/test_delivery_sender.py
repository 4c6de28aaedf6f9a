"""The sender against the real sandbox: each delivery ends published, failed with advice, back to
planned (surely not sent) or left 'sending' (unknown) — and an unknown outcome is reconciled, so the
sandbox never holds a post twice."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from sqlalchemy import select

from koho.delivery.sender import Sender
from koho.delivery.slots import group_into_slots, send_slot
from koho.ledger import accounts as ledger_accounts
from koho.ledger import deliveries as ledger_deliveries
from koho.ledger.models import CalendarEntry, Delivery
from koho.platforms.base import RetryPolicy
from koho.platforms.registry import hook_for
from koho.timeutil import utcnow
from sandbox.server import free_port
from tests.conftest import set_connection
from tests.unit.delivery.delivery_helpers import add_entry, plan, soon
from tests.unit.delivery.test_delivery_planner import LONG

TEXT = "こほ市からのお知らせです。本日の市役所の窓口は17時まで開いています。"


def fast_hooks(attempts: int = 2):
    """Hooks that retry quickly and never really sleep (the sandbox answers at once)."""

    def factory(platform: str, conn_id: str, **options):
        return hook_for(
            platform,
            conn_id,
            timeout=3.0,
            sleep=lambda _s: None,
            retry=RetryPolicy(max_attempts=attempts, base_delay=0.01, max_delay=0.02),
            **options,
        )

    return factory


def sender(ledger, *, attempts: int = 2, **kwargs) -> Sender:
    return Sender(ledger, hook_factory=fast_hooks(attempts), **kwargs)


def only_delivery(ledger, entry_id: str) -> Delivery:
    with ledger.session(readonly=True) as session:
        return session.scalars(select(Delivery).where(Delivery.entry_id == entry_id)).one()


def entry_status(ledger, entry_id: str) -> str:
    with ledger.session(readonly=True) as session:
        return session.get(CalendarEntry, entry_id).status


@pytest.fixture
def x_account(city):
    return city("city-x", "x")


def test_a_delivery_is_published_and_recorded(ledger, sandbox, x_account):
    add_entry(ledger, "e1", accounts=["city-x"], text=TEXT, due=soon(-1))
    plan(ledger, "e1")
    delivery = only_delivery(ledger, "e1")

    outcome = sender(ledger, dag_run_id="calendar_publish/r1").send(delivery.id)

    assert outcome.status == "published" and outcome.remote_id
    assert 0.9 <= outcome.late_seconds < 5 and outcome.call_seconds is not None
    row = only_delivery(ledger, "e1")
    assert row.status == "published" and row.remote_id == outcome.remote_id
    assert row.remote_url.endswith(f"/status/{outcome.remote_id}") and row.dag_run_id == "calendar_publish/r1"
    posts = sandbox.posts("x")
    assert [p["post_id"] for p in posts] == [outcome.remote_id] and posts[0]["text"] == TEXT
    assert entry_status(ledger, "e1") == "published"

    again = sender(ledger).send(delivery.id)  # a repeated send changes nothing
    assert again.status == "published" and again.remote_id == outcome.remote_id
    assert len(sandbox.posts("x")) == 1


def test_a_permanent_rejection_fails_with_advice(ledger, sandbox, x_account):
    add_entry(ledger, "dup", accounts=["city-x"], text=TEXT)
    plan(ledger, "dup")
    sandbox.fault("x", "duplicate", operation="publish")

    outcome = sender(ledger).send(only_delivery(ledger, "dup").id)

    row = only_delivery(ledger, "dup")
    assert outcome.status == row.status == "failed"
    assert "already posted" in row.last_error and "check the account" in row.last_error
    assert entry_status(ledger, "dup") == "failed" and sandbox.posts("x") == []


def test_a_rate_limit_sends_it_back_to_planned(ledger, sandbox, x_account):
    add_entry(ledger, "busy", accounts=["city-x"], text=TEXT)
    plan(ledger, "busy")
    sandbox.fault("x", "rate_limit", operation="publish", count=3)

    outcome = sender(ledger, attempts=1).send(only_delivery(ledger, "busy").id)

    row = only_delivery(ledger, "busy")
    assert outcome.status == row.status == "planned" and "tried again" in row.last_error
    assert row.attempts == 1 and sandbox.posts("x") == []
    sandbox.admin("DELETE", "/faults")
    assert sender(ledger).send(row.id).status == "published" and len(sandbox.posts("x")) == 1


def test_a_platform_out_of_reach_sends_it_back_to_planned(ledger, monkeypatch, x_account):
    add_entry(ledger, "down", accounts=["city-x"], text=TEXT)
    plan(ledger, "down")
    set_connection(
        monkeypatch,
        x_account["connection_id"],
        conn_type="koho_x",
        host=f"http://127.0.0.1:{free_port()}/x",
        login=x_account["handle"],
        password="unused",
    )

    outcome = sender(ledger, attempts=1).send(only_delivery(ledger, "down").id)

    assert outcome.status == "planned" and only_delivery(ledger, "down").status == "planned"


def test_an_unknown_outcome_stays_sending_and_a_stale_reclaim_finds_the_post(ledger, sandbox, x_account):
    add_entry(ledger, "lost", accounts=["city-x"], text=TEXT)
    plan(ledger, "lost")
    delivery = only_delivery(ledger, "lost")
    # The post is applied but its answer lost, and reading the account back fails too.
    sandbox.fault("x", "lost_response", operation="publish")
    sandbox.fault("x", "server_error", operation="read", count=20)

    outcome = sender(ledger).send(delivery.id)

    row = only_delivery(ledger, "lost")
    assert outcome.status == row.status == "sending" and "check the account" in outcome.error
    assert len(sandbox.posts("x")) == 1  # it did land

    # A fresh claim is refused while the attempt may still be running...
    assert sender(ledger).send(delivery.id).status == "skipped"
    # ...and once stale, the next attempt reconciles first and finds the post instead of posting again.
    sandbox.admin("DELETE", "/faults")
    reclaimed = sender(ledger, stale_after=timedelta(0)).send(delivery.id)
    assert reclaimed.status == "published" and reclaimed.reconciled
    posts = sandbox.posts("x")
    assert len(posts) == 1 and only_delivery(ledger, "lost").remote_id == posts[0]["post_id"]


def test_a_retry_takes_over_what_its_dead_predecessor_left_sending(ledger, sandbox, x_account):
    add_entry(ledger, "killed", accounts=["city-x"], text=TEXT)
    plan(ledger, "killed")
    delivery = only_delivery(ledger, "killed")
    with ledger.session() as session:  # try 1 claimed it, then its process was killed
        ledger_deliveries.claim_for_sending(
            session, delivery.id, "calendar_publish/r7", now=utcnow() - timedelta(seconds=90)
        )

    assert sender(ledger, dag_run_id="calendar_publish/r7").send(delivery.id).status == "skipped"
    assert sender(ledger, dag_run_id="calendar_publish/other", reclaim_own=True).send(delivery.id).status == "skipped"
    outcome = sender(ledger, dag_run_id="calendar_publish/r7", reclaim_own=True).send(delivery.id)
    assert outcome.status == "published" and len(sandbox.posts("x")) == 1
    assert only_delivery(ledger, "killed").attempts == 2


def test_thread_parts_answer_each_other(ledger, sandbox, x_account):
    add_entry(ledger, "thread", accounts=["city-x"], text=LONG, due=soon(-1))
    plan(ledger, "thread")
    with ledger.session(readonly=True) as session:
        parts = list(session.scalars(select(Delivery).order_by(Delivery.part_index)))
    [slot] = group_into_slots(parts)

    outcomes = send_slot(sender(ledger), slot, wait=False)

    assert [o.status for o in outcomes] == ["published"] * len(parts)
    by_id = {p["post_id"]: p for p in sandbox.posts("x")}
    assert len(by_id) == len(parts)
    assert by_id[outcomes[0].remote_id]["reply_to"] is None
    for previous, part in itertools.pairwise(outcomes):
        assert by_id[part.remote_id]["reply_to"] == previous.remote_id


def test_a_later_part_waits_while_the_first_is_still_being_sent(ledger, sandbox, x_account):
    add_entry(ledger, "thread", accounts=["city-x"], text=LONG)
    plan(ledger, "thread")
    with ledger.session() as session:
        first, second = list(session.scalars(select(Delivery).order_by(Delivery.part_index)))[:2]
        ledger_deliveries.claim_for_sending(session, first.id, "calendar_publish/r1")

    outcome = sender(ledger).send(second.id)

    assert outcome.status == "planned" and "waiting for part 1" in outcome.error
    with ledger.session(readonly=True) as session:
        assert session.get(Delivery, second.id).status == "planned"
    assert sandbox.posts("x") == []


def test_a_suspended_account_fails_without_posting(ledger, sandbox, city):
    city("city-bluesky", "bluesky", status="suspended")
    add_entry(ledger, "e1", accounts=["city-bluesky"], text=TEXT)
    plan(ledger, "e1")

    outcome = sender(ledger).send(only_delivery(ledger, "e1").id)

    assert outcome.status == "failed" and "suspended" in outcome.error
    assert only_delivery(ledger, "e1").status == "failed" and sandbox.posts() == []


def test_images_go_where_the_platform_takes_them(ledger, sandbox, city, monkeypatch):
    """LINE gets the public URL; X downloads it and uploads the bytes (the download is stubbed:
    the city's website is not reachable from the tests)."""
    from koho.platforms.x import XHook

    city("city-x", "x")
    city("city-line", "line")
    image = "https://www.city.example.jp/news/media/gomi.png"
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
    read: list[str] = []
    monkeypatch.setattr(XHook, "read_image", lambda self, url: (read.append(url), (png, "image/png"))[1])
    add_entry(ledger, "gomi", accounts=["city-x", "city-line"], text=TEXT, images=[image])
    s = sender(ledger)
    outcomes = [s.send(i) for i in plan(ledger, "gomi").deliveries]
    assert [o.status for o in outcomes] == ["published", "published"]
    [x_post], [line_post] = sandbox.posts("x"), sandbox.posts("line")
    assert read == [image] and len(x_post["media"]) == 1
    assert image in str(line_post["media"])


@pytest.mark.parametrize("platform", ["x", "mastodon", "bluesky"])
def test_a_local_image_is_uploaded_from_koho_s_copy_and_linked_where_the_platform_fetches(
    ledger, sandbox, city, platform
):
    """Platforms that take the bytes get include/media's file (the city's website, where the image
    is also published, need not be reachable); LINE, which fetches a URL itself, gets the public URL."""
    from koho.config.loader import media_dir

    image = "gomi-calendar.png"
    assert (media_dir() / image).is_file()
    uploader = city(f"city-{platform}", platform)
    city("city-line", "line")
    add_entry(ledger, "gomi", accounts=[uploader["id"], "city-line"], text=TEXT, images=[image])
    s = sender(ledger)
    outcomes = [s.send(i) for i in plan(ledger, "gomi").deliveries]
    assert [o.status for o in outcomes] == ["published", "published"], [o.error for o in outcomes]
    [uploaded], [line_post] = sandbox.posts(platform), sandbox.posts("line")
    assert uploaded["media"], "the image was not attached"
    assert f"/media/{image}" in str(line_post["media"]) and "https://" in str(line_post["media"])


def test_a_slot_of_many_posts_to_one_bluesky_account_logs_in_once_and_posts_each_once(ledger, sandbox, city):
    """Twelve calendar posts at one instant: the slot's threads share one hook and one session, and
    every post gets its own record key although all share createdAt."""
    from sandbox.platforms.bluesky import session_counts

    account = city("city-bluesky", "bluesky")
    due = soon(-1)
    for n in range(12):
        add_entry(ledger, f"e{n}", accounts=["city-bluesky"], text=f"{TEXT}（{n}）", due=due)
        plan(ledger, f"e{n}")
    with ledger.session(readonly=True) as session:
        [slot] = group_into_slots(list(session.scalars(select(Delivery))))

    outcomes = send_slot(sender(ledger), slot, max_workers=12, wait=False)

    assert [o.status for o in outcomes] == ["published"] * 12, [o.error for o in outcomes]
    posts = sandbox.posts("bluesky")
    assert len(posts) == len({p["post_id"] for p in posts}) == 12
    assert session_counts(sandbox.state, account["sandbox"]["account_id"])["logins"] == 1


def test_a_claim_is_renewed_while_the_platform_call_waits(ledger, sandbox, x_account):
    """A hook waiting for a rate-limit window longer than stale_after must not let another run take
    the delivery over: the sender renews its claim while the call runs."""
    import threading

    add_entry(ledger, "slow", accounts=["city-x"], text=TEXT)
    plan(ledger, "slow")
    delivery = only_delivery(ledger, "slow")
    calling, release = threading.Event(), threading.Event()

    def waiting_hooks(platform: str, conn_id: str, **options):
        hook = fast_hooks()(platform, conn_id, **options)
        publish = hook.publish_once

        def publish_after_the_wait(*args, **kwargs):
            calling.set()
            assert release.wait(10), "the test never released the call"
            return publish(*args, **kwargs)

        hook.publish_once = publish_after_the_wait
        return hook

    slow = Sender(ledger, hook_factory=waiting_hooks, stale_after=timedelta(seconds=0.3), dag_run_id="run-a")
    result: list = []
    worker = threading.Thread(target=lambda: result.append(slow.send(delivery.id)))
    worker.start()
    assert calling.wait(10)
    claimed_at = only_delivery(ledger, "slow").sending_since

    def renewed() -> bool:
        return only_delivery(ledger, "slow").sending_since > claimed_at

    deadline = utcnow() + timedelta(seconds=10)
    while not renewed():  # an event in the ledger, polled: the renewal every 0.1 s
        assert utcnow() < deadline, "the claim was never renewed"
    with ledger.session() as session:  # the renewed claim is younger than stale_after: no takeover
        renewed_at = session.get(Delivery, delivery.id).sending_since
        other = ledger_deliveries.claim_for_sending(
            session, delivery.id, "run-b", stale_after=timedelta(seconds=0.3), now=renewed_at + timedelta(seconds=0.2)
        )
    assert not other.ok
    release.set()
    worker.join(10)
    assert result[0].status == "published" and len(sandbox.posts("x")) == 1


def test_a_website_delivery_is_published_by_its_channel_and_a_bad_one_fails_with_the_reason(ledger, tmp_path):
    from koho.channels.registry import channel_accounts
    from tests.unit.calendar.calendar_helpers import write_config

    city = write_config(tmp_path / "config", website_dir=tmp_path / "site")
    with ledger.session() as session:
        ledger_accounts.upsert_accounts(session, channel_accounts(city))
    add_entry(ledger, "gomi", accounts=[], text=TEXT, due=soon(-1), channels=["website"])
    add_entry(ledger, "bad", accounts=[], text=TEXT, due=soon(-1), channels=["website"], link="javascript:alert(1)")
    plan(ledger, "gomi")
    plan(ledger, "bad")
    website = Sender(ledger, config=city, hook_factory=lambda *_a, **_k: pytest.fail("a channel needs no hook"))

    published = website.send(only_delivery(ledger, "gomi").id)
    failed = website.send(only_delivery(ledger, "bad").id)

    assert published.status == "published" and published.url.endswith("/news/gomi.html")
    assert (tmp_path / "site" / "news" / "gomi.html").exists()
    row = only_delivery(ledger, "bad")
    assert failed.status == row.status == "failed"
    assert "javascript:alert(1)" in row.last_error and "is not an http(s) URL" in row.last_error
