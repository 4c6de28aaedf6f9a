"""Planning an entry into deliveries: one per account and thread part, texts fitted, rows written
before anything is sent, and planning twice changing nothing."""

from __future__ import annotations

import itertools

from sqlalchemy import select

from koho.channels.registry import channel_accounts
from koho.ledger import accounts as ledger_accounts
from koho.ledger import deliveries as ledger_deliveries
from koho.ledger.models import Account, Delivery
from koho.text.rules import rules_for
from tests.unit.delivery.delivery_helpers import T0, account_row, add_entry, plan

WEBSITE = "website"  # the website channel's pseudo-account

LONG = (
    "市内一斉清掃のお知らせです。5月の第3日曜日、午前8時から10時まで、各自治会の集合場所に集まってください。"
    "軍手とごみ袋は自治会で用意します。集めたごみは指定の集積所に出してください。"
    "雨天の場合は翌週の日曜日に延期し、延期の場合は前日の午後5時までに市のホームページとSNSでお知らせします。"
)


def _accounts(ledger, *rows):
    with ledger.session() as session:
        ledger_accounts.upsert_accounts(session, list(rows))


def _deliveries(ledger, entry_id):
    with ledger.session(readonly=True) as session:
        return list(
            session.scalars(
                select(Delivery).where(Delivery.entry_id == entry_id).order_by(Delivery.account_id, Delivery.part_index)
            )
        )


def test_a_text_too_long_for_x_becomes_a_chain_of_parts(ledger):
    _accounts(ledger, account_row("city-x", "x"), account_row("city-fb", "facebook"))
    add_entry(ledger, "seiso", accounts=["city-x", "city-fb"], text=LONG, hashtags=["こほ市"])

    outcome = plan(ledger, "seiso")

    rows = _deliveries(ledger, "seiso")
    x_parts = [d for d in rows if d.account_id == "city-x"]
    fb = [d for d in rows if d.account_id == "city-fb"]
    assert len(x_parts) >= 2 and len(fb) == 1  # Facebook takes the whole text
    assert [d.part_index for d in x_parts] == list(range(len(x_parts)))
    assert x_parts[0].parent_delivery_id is None
    for previous, part in itertools.pairwise(x_parts):
        assert part.parent_delivery_id == previous.id  # each part answers the one before
    rule = rules_for("x")
    assert all(rule.count(d.text) <= rule.max_length for d in x_parts)
    assert {d.due_at for d in rows} == {T0} and {d.status for d in rows} == {"planned"}
    assert len({d.idempotency_key for d in rows}) == len(rows)
    assert outcome.created == len(rows) and not outcome.problems

    again = plan(ledger, "seiso")  # a second sync, or an overlapping run
    assert again.created == 0 and sorted(again.deliveries) == sorted(d.id for d in rows)
    assert len(_deliveries(ledger, "seiso")) == len(rows)


def test_the_website_channel_is_a_pseudo_account(ledger, config):
    _accounts(ledger, account_row("city-x", "x"))
    with ledger.session() as session:
        ledger_accounts.upsert_accounts(session, channel_accounts(config))
    add_entry(ledger, "gomi", accounts=["city-x"], text="ごみ収集日程のお知らせです。", channels=["social", "website"])

    plan(ledger, "gomi")

    rows = {d.account_id: d for d in _deliveries(ledger, "gomi")}
    assert set(rows) == {"city-x", WEBSITE}
    assert rows[WEBSITE].text == "ごみ収集日程のお知らせです。"  # the page gets the full text, never fitted
    with ledger.session(readonly=True) as session:
        website = session.get(Account, WEBSITE)
    assert website.platform == WEBSITE and website.status == "active"


def test_a_website_only_entry_plans_the_website_alone(ledger, config):
    with ledger.session() as session:
        ledger_accounts.upsert_accounts(session, channel_accounts(config))
    add_entry(ledger, "shinkoku", accounts=[], text="確定申告の会場のお知らせ。", channels=["website", "newsletter"])
    plan(ledger, "shinkoku")
    assert [d.account_id for d in _deliveries(ledger, "shinkoku")] == [WEBSITE]


def test_emergency_mode_never_rewords(ledger):
    _accounts(ledger, account_row("city-x", "x"), account_row("city-mastodon", "mastodon"))
    text = "【避難指示】こほ市北部に避難指示を発令しました。直ちに避難してください。"
    add_entry(
        ledger,
        "quake",
        accounts=["city-x", "city-mastodon"],
        text=text,
        origin="emergency",
        overrides={"x": "言い換えた文面", "city-mastodon": "別の文面"},
        hashtags=["こほ市"],
    )

    plan(ledger, "quake", mode="emergency")

    rows = _deliveries(ledger, "quake")
    assert {d.text for d in rows} == {text}  # no override, no hashtag, no rewording


def test_adapt_mode_takes_overrides(ledger):
    _accounts(ledger, account_row("city-x", "x"), account_row("city-mastodon", "mastodon"))
    add_entry(
        ledger,
        "fest",
        accounts=["city-x", "city-mastodon"],
        text="秋祭りを開催します。",
        overrides={"x": "X向けの文面です。", "city-mastodon": "マストドン向けの文面です。"},
    )
    plan(ledger, "fest")
    texts = {d.account_id: d.text for d in _deliveries(ledger, "fest")}
    assert texts == {"city-x": "X向けの文面です。", "city-mastodon": "マストドン向けの文面です。"}


def test_an_entry_needing_approval_waits(ledger):
    _accounts(ledger, account_row("city-x", "x"))
    add_entry(ledger, "bousai", accounts=["city-x"], text="防災訓練のお知らせです。", approval=True)

    plan(ledger, "bousai")
    assert {d.status for d in _deliveries(ledger, "bousai")} == {"awaiting_approval"}

    with ledger.session() as session:
        released = ledger_deliveries.approve_deliveries(session, "bousai")
    assert len(released) == 1 and {d.status for d in _deliveries(ledger, "bousai")} == {"planned"}


def test_an_unknown_account_is_reported_and_the_others_planned(ledger):
    _accounts(ledger, account_row("city-x", "x"))
    add_entry(ledger, "e1", accounts=["city-x", "nobody"], text="お知らせです。")
    outcome = plan(ledger, "e1")
    assert "nobody" in outcome.problems and "accounts_sync" in outcome.problems["nobody"]
    assert [d.account_id for d in _deliveries(ledger, "e1")] == ["city-x"]
