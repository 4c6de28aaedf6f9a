"""Newsletter export: grouping by category, trimming at 。, formula neutralisation, an Excel-
friendly CSV, Japan-time month boundaries, and reading the month from a real (SQLite) ledger."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook

from koho.channels.newsletter import export_month, month_bounds, month_rows, neutralise, trim_text
from koho.config.schema import NewsletterChannel
from koho.ledger.db import Ledger, dispose_engine
from koho.ledger.models import Account, CalendarEntry, Delivery

NOV_30_2330_JST = datetime(2026, 11, 30, 14, 30, tzinfo=UTC)
DEC_01_0030_JST = datetime(2026, 11, 30, 15, 30, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path: Path) -> NewsletterChannel:
    return NewsletterChannel(output_dir=str(tmp_path / "newsletter"), max_item_chars=40)


def row(entry_id: str, published_at: datetime, **overrides) -> dict:
    values = {
        "entry_id": entry_id,
        "title": f"記事 {entry_id}",
        "text": "市からのお知らせです。",
        "category": "くらし",
        "published_at": published_at,
        "accounts": [{"name": "こほ市", "platform": "x", "url": f"https://x.com/koho/status/{entry_id}"}],
    }
    values.update(overrides)
    return values


def read_csv(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.reader(handle))


def test_trim_at_a_sentence_end_with_an_ellipsis() -> None:
    text = "一文目です。二文目も短いです。三文目はとても長くて入りきらない文章です。"
    trimmed = trim_text(text, 20)
    assert trimmed == "一文目です。二文目も短いです。…"
    assert len(trimmed) <= 20
    assert trim_text("短い文。", 20) == "短い文。"
    # One endless sentence: cut hard rather than keep almost nothing.
    long_sentence = "あ" * 50 + "。"
    assert trim_text(long_sentence, 20) == "あ" * 19 + "…"
    assert trim_text("短。" + "い" * 40, 20) == "短。" + "い" * 17 + "…"


def test_month_bounds_are_japan_months() -> None:
    start, end = month_bounds(2026, 12)
    assert start == datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
    assert end == datetime(2026, 12, 31, 15, 0, tzinfo=UTC)
    assert month_bounds(2026, 1)[0] == datetime(2025, 12, 31, 15, 0, tzinfo=UTC)


def test_posts_around_midnight_belong_to_their_japan_month(settings: NewsletterChannel) -> None:
    rows = [row("late-nov", NOV_30_2330_JST), row("early-dec", DEC_01_0030_JST)]
    november = read_csv(export_month(rows, 2026, 11, settings).with_suffix(".csv"))
    december = read_csv(export_month(rows, 2026, 12, settings).with_suffix(".csv"))
    assert [r[-1] for r in november[1:]] == ["late-nov"]
    assert november[1][1] == "2026-11-30 23:30"
    assert [r[-1] for r in december[1:]] == ["early-dec"]
    assert december[1][1] == "2026-12-01 00:30"


def test_workbook_groups_by_category_with_a_summary(settings: NewsletterChannel) -> None:
    t = datetime(2026, 11, 10, 0, 0, tzinfo=UTC)
    rows = [
        row("b", t + timedelta(days=2), category="子育て"),
        row("a", t, category="子育て"),
        row("c", t, category="防災"),
        row("d", t, category=None),
        row(
            "a",
            t + timedelta(hours=1),
            category="子育て",
            accounts=[{"name": "こほ市子育て", "platform": "facebook", "url": "https://facebook.com/p/a"}],
        ),
    ]
    path = export_month(rows, 2026, 11, settings)
    assert path.name == "koho-newsletter-2026-11.xlsx"
    book = load_workbook(path)
    assert book.sheetnames == ["概要", "子育て", "防災", "その他"]
    summary = [[c.value for c in r] for r in book["概要"].iter_rows(min_row=4)]
    assert summary[:4] == [["子育て", 2, "子育て"], ["防災", 1, "防災"], ["その他", 1, "その他"], ["合計", 4, None]]
    kosodate = [[c.value for c in r] for r in book["子育て"].iter_rows(values_only=False)]
    assert kosodate[0][0] == "公開日時（JST）"
    assert [r[-1] for r in kosodate[1:]] == ["a", "b"], "oldest first within a category"
    merged = kosodate[1]
    assert merged[3] == "X（こほ市）、Facebook（こほ市子育て）"
    assert merged[4] == "https://x.com/koho/status/a\nhttps://facebook.com/p/a"
    assert (path.parent / "koho-newsletter-2026-11.html").exists()


def test_texts_are_trimmed_in_every_output(settings: NewsletterChannel) -> None:
    text = "第一文はここまでです。第二文もここまでです。第三文はとても長いので紙面に入りません。"
    path = export_month([row("a", NOV_30_2330_JST, text=text)], 2026, 11, settings)
    expected = "第一文はここまでです。第二文もここまでです。…"
    assert load_workbook(path)["くらし"]["C2"].value == expected
    assert read_csv(path.with_suffix(".csv"))[1][3] == expected
    assert expected in path.with_suffix(".html").read_text(encoding="utf-8")


def test_formula_like_cells_are_neutralised(settings: NewsletterChannel) -> None:
    rows = [
        row(
            "f",
            NOV_30_2330_JST,
            title='=HYPERLINK("https://evil.example","クリック")',
            text="+81-47-000-0000",
            category="@営業",
        )
    ]
    path = export_month(rows, 2026, 11, settings)
    sheet = load_workbook(path)["@営業"]
    assert sheet["B2"].value == '\'=HYPERLINK("https://evil.example","クリック")'
    assert sheet["B2"].data_type == "s"
    assert sheet["C2"].value == "'+81-47-000-0000"
    assert load_workbook(path)["概要"]["A4"].value == "'@営業"
    line = read_csv(path.with_suffix(".csv"))[1]
    assert line[0] == "'@営業" and line[2].startswith("'=") and line[3].startswith("'+")
    assert neutralise("-5度") == "'-5度" and neutralise("ふつう") == "ふつう" and neutralise(3) == 3


def test_csv_has_a_bom_and_reads_back_as_japanese(settings: NewsletterChannel) -> None:
    path = export_month([row("j", NOV_30_2330_JST, title="市役所からのお知らせ、臨時休業")], 2026, 11, settings)
    raw = path.with_suffix(".csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert b"\r\n" in raw
    rows = read_csv(path.with_suffix(".csv"))
    assert rows[0] == ["カテゴリ", "公開日時（JST）", "タイトル", "本文", "掲載先", "URL", "エントリーID"]
    assert rows[1][2] == "市役所からのお知らせ、臨時休業"


def test_html_preview_escapes_untrusted_text(settings: NewsletterChannel) -> None:
    rows = [
        row(
            "x",
            NOV_30_2330_JST,
            title="<script>alert(1)</script>",
            accounts=[{"name": "x", "platform": "x", "url": "javascript:alert(1)"}],
        )
    ]
    html = export_month(rows, 2026, 11, settings).with_suffix(".html").read_text(encoding="utf-8")
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'href="javascript:' not in html
    assert '<html lang="ja">' in html


def test_an_empty_month_still_produces_the_files(settings: NewsletterChannel) -> None:
    path = export_month([], 2026, 2, settings)
    assert load_workbook(path).sheetnames == ["概要"]
    assert len(read_csv(path.with_suffix(".csv"))) == 1
    assert "公開された記事はありません" in path.with_suffix(".html").read_text(encoding="utf-8")


def test_rows_without_a_usable_time_are_skipped_not_fatal(settings: NewsletterChannel) -> None:
    rows = [row("naive", datetime(2026, 11, 10, 9, 0)), row("ok", NOV_30_2330_JST), {"title": "no id"}]
    assert [r[-1] for r in read_csv(export_month(rows, 2026, 11, settings).with_suffix(".csv"))[1:]] == ["ok"]


# ---------------------------------------------------------------------------------------------
# month_rows against a real ledger


@pytest.fixture
def ledger(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Ledger(url)
    ledger.migrate()
    yield ledger
    dispose_engine(url)


def seed(session) -> None:
    session.add_all(
        [
            Account(id="city_x", platform="x", handle="koho_city", display_name="こほ市", department="pr"),
            Account(
                id="city_fb", platform="facebook", handle="kohocity", display_name="こほ市 Facebook", department="pr"
            ),
        ]
    )
    for entry_id, title, payload in [
        ("late-nov", "11月最後の投稿", {"text": "11月30日の夜のお知らせです。", "category": "くらし"}),
        ("early-dec", "12月最初の投稿", {"text": "12月1日の未明のお知らせです。", "category": "防災"}),
        ("failed-only", "失敗した投稿", {"text": "届かなかった投稿です。"}),
        ("no-text", "本文なし", {}),
    ]:
        session.add(
            CalendarEntry(
                id=entry_id,
                origin="calendar",
                source="calendar.yaml",
                title=title,
                publish_at=NOV_30_2330_JST,
                payload=payload,
                content_hash=entry_id,
            )
        )
    session.flush()

    def delivery(entry_id, account_id, status, published_at, part=0, text="投稿文", url=None):
        session.add(
            Delivery(
                entry_id=entry_id,
                account_id=account_id,
                revision=1,
                idempotency_key=f"{entry_id}-{account_id}-{part}",
                part_index=part,
                due_at=published_at or NOV_30_2330_JST,
                status=status,
                text=text,
                planned_created_at=NOV_30_2330_JST,
                published_at=published_at,
                remote_url=url or (f"https://example.social/{entry_id}/{account_id}" if published_at else None),
            )
        )

    delivery("late-nov", "city_x", "published", NOV_30_2330_JST)
    # The same entry reached Facebook after midnight: it still belongs to November, once.
    delivery("late-nov", "city_fb", "published", NOV_30_2330_JST + timedelta(minutes=45))
    delivery("early-dec", "city_x", "published", DEC_01_0030_JST)
    delivery("failed-only", "city_x", "failed", None)
    delivery("no-text", "city_x", "published", NOV_30_2330_JST - timedelta(days=3), text="スレッドの1つ目。")
    delivery("no-text", "city_x", "published", NOV_30_2330_JST - timedelta(days=3), part=1, text="2つ目。")


def test_month_rows_reads_published_entries_by_japan_month(ledger: Ledger, settings: NewsletterChannel) -> None:
    with ledger.session() as session:
        seed(session)
    with ledger.session(readonly=True) as session:
        november = month_rows(session, 2026, 11)
        december = month_rows(session, 2026, 12)

    assert [r["entry_id"] for r in november] == ["no-text", "late-nov"]
    late = november[1]
    assert late["published_at"] == NOV_30_2330_JST
    assert late["text"] == "11月30日の夜のお知らせです。" and late["category"] == "くらし"
    assert [(a["account_id"], a["platform"], a["url"]) for a in late["accounts"]] == [
        ("city_x", "x", "https://example.social/late-nov/city_x"),
        ("city_fb", "facebook", "https://example.social/late-nov/city_fb"),
    ]
    assert november[0]["text"] == "スレッドの1つ目。" and len(november[0]["accounts"]) == 1
    assert [r["entry_id"] for r in december] == ["early-dec"]

    path = export_month(november, 2026, 11, settings)
    book = load_workbook(path)
    assert book.sheetnames == ["概要", "くらし", "その他"]
    assert book["くらし"]["D2"].value == "X（こほ市）、Facebook（こほ市 Facebook）"
