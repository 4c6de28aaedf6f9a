"""Website channel: pages escaped and accessible, a valid Atom feed newest first, idempotent
republishing (the item id is the key), atomic regeneration, and the emergency banner."""

from __future__ import annotations

import json
import threading
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from koho.channels import website
from koho.channels._common import ChannelError
from koho.channels.website import NewsImage, NewsItem, clear_emergency, publish_news_item, slug_for
from koho.config.schema import WebsiteChannel

ATOM = "{http://www.w3.org/2005/Atom}"
T0 = datetime(2026, 11, 30, 14, 30, tzinfo=UTC)  # 23:30 on 30 November in Tokyo
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63f8cfc0f01f0005"
    "0001ff5ccc5d0b0000000049454e44ae426082"
)


@pytest.fixture
def settings(tmp_path: Path) -> WebsiteChannel:
    return WebsiteChannel(
        output_dir=str(tmp_path / "site"),
        base_url="https://www.city.example.jp/news/",
        feed_title="こほ市からのお知らせ",
    )


def item(item_id: str = "2026-11-30-roads", **overrides) -> NewsItem:
    values = {
        "id": item_id,
        "title": "道路工事のお知らせ",
        "body": "12月1日から市道1号線で工事を行います。\nご迷惑をおかけします。\n\n問い合わせは道路課へ。",
        "published_at": T0,
        "link": "https://www.city.example.jp/roads/1.html",
        "category": "くらし",
    }
    values.update(overrides)
    return NewsItem(**values)


def parse_feed(path: Path) -> ET.Element:
    """Parse as XML and check what RFC 4287 requires of a feed and of each entry."""
    root = ET.parse(path).getroot()  # noqa: S314 - our own output, parsed to validate it
    assert root.tag == f"{ATOM}feed"
    for name in ("id", "title", "updated", "author"):
        assert root.find(f"{ATOM}{name}") is not None, f"feed lacks atom:{name}"
    rels = {link.get("rel"): link.get("href") for link in root.findall(f"{ATOM}link")}
    assert rels["self"] == "https://www.city.example.jp/news/feed.xml"
    assert rels["alternate"].startswith("https://www.city.example.jp/news/")
    datetime.fromisoformat(root.findtext(f"{ATOM}updated"))
    for entry in root.findall(f"{ATOM}entry"):
        assert entry.findtext(f"{ATOM}id").startswith("tag:www.city.example.jp,")
        assert entry.findtext(f"{ATOM}title")
        for stamp in ("updated", "published"):
            assert datetime.fromisoformat(entry.findtext(f"{ATOM}{stamp}")).utcoffset() is not None
        assert entry.find(f"{ATOM}link[@rel='alternate']").get("href").startswith("https://")
        content = entry.find(f"{ATOM}content")
        assert content is not None and content.get("type") == "html"
    return root


def entries(root: ET.Element) -> list[ET.Element]:
    return root.findall(f"{ATOM}entry")


def test_page_is_written_escaped_and_accessible(settings: WebsiteChannel) -> None:
    hostile = item(title="<b>太字</b>のお知らせ", body="本文です。<script>alert('x')</script>\n2行目")
    result = publish_news_item(hostile, settings, now=T0)

    assert result.path == Path(settings.output_dir) / "news" / "2026-11-30-roads.html"
    assert result.url == "https://www.city.example.jp/news/news/2026-11-30-roads.html"
    html = result.path.read_text(encoding="utf-8")
    assert "<script>alert" not in html and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert "<b>太字</b>" not in html and "&lt;b&gt;太字&lt;/b&gt;のお知らせ" in html
    assert '<html lang="ja">' in html
    assert "<title>&lt;b&gt;太字&lt;/b&gt;のお知らせ | こほ市からのお知らせ</title>" in html
    assert '<time datetime="2026-11-30T23:30:00+09:00">2026年11月30日 23:30 JST</time>' in html
    assert 'href="https://www.city.example.jp/roads/1.html"' in html
    assert "本文です。&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;<br>2行目" in html
    assert (Path(settings.output_dir) / "index.html").read_text(encoding="utf-8").count(
        "news/2026-11-30-roads.html"
    ) == 1


def test_feed_content_is_escaped_html_that_stays_escaped(settings: WebsiteChannel) -> None:
    publish_news_item(item(body="<script>alert(1)</script> & more"), settings, now=T0)
    root = parse_feed(Path(settings.output_dir) / "feed.xml")
    content = entries(root)[0].findtext(f"{ATOM}content")
    # The XML parser undoes one level of escaping: what a reader renders as HTML is still inert text.
    assert "<p>" in content and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in content
    assert "<script>" not in content


def test_feed_is_valid_atom_newest_first(settings: WebsiteChannel) -> None:
    for n, hours in enumerate([2, 0, 5, 1]):
        publish_news_item(
            item(f"item-{n}", title=f"お知らせ{n}", published_at=T0 + timedelta(hours=hours)),
            settings,
            now=T0 + timedelta(hours=6),
        )
    root = parse_feed(Path(settings.output_dir) / "feed.xml")
    titles = [e.findtext(f"{ATOM}title") for e in entries(root)]
    assert titles == ["お知らせ2", "お知らせ0", "お知らせ3", "お知らせ1"]
    published = [datetime.fromisoformat(e.findtext(f"{ATOM}published")) for e in entries(root)]
    assert published == sorted(published, reverse=True)
    assert len({e.findtext(f"{ATOM}id") for e in entries(root)}) == 4
    assert root.get("{http://www.w3.org/XML/1998/namespace}lang") == "ja"


def test_republishing_the_same_id_updates_and_never_duplicates(settings: WebsiteChannel) -> None:
    first = publish_news_item(item(), settings, now=T0)
    feed = Path(settings.output_dir) / "feed.xml"
    atom_id = entries(parse_feed(feed))[0].findtext(f"{ATOM}id")
    before = {p.name: p.read_bytes() for p in Path(settings.output_dir).rglob("*") if p.is_file()}

    again = publish_news_item(item(), settings, now=T0 + timedelta(hours=3))
    assert again.changed is False and again.url == first.url
    after = {p.name: p.read_bytes() for p in Path(settings.output_dir).rglob("*") if p.is_file()}
    assert after == before, "republishing unchanged content must regenerate byte-identical files"

    corrected = publish_news_item(item(title="道路工事のお知らせ（訂正）"), settings, now=T0 + timedelta(hours=4))
    assert corrected.changed is True and corrected.path == first.path
    root = parse_feed(feed)
    assert len(entries(root)) == 1
    entry = entries(root)[0]
    assert entry.findtext(f"{ATOM}id") == atom_id
    assert entry.findtext(f"{ATOM}title") == "道路工事のお知らせ（訂正）"
    assert entry.findtext(f"{ATOM}updated") == "2026-12-01T03:30:00+09:00"
    assert entry.findtext(f"{ATOM}published") == "2026-11-30T23:30:00+09:00"
    assert "（訂正）" in first.path.read_text(encoding="utf-8")


def test_only_the_last_entries_stay_in_the_feed(settings: WebsiteChannel) -> None:
    for n in range(5):
        publish_news_item(item(f"item-{n}", published_at=T0 + timedelta(minutes=n)), settings, now=T0, max_entries=3)
    root = parse_feed(Path(settings.output_dir) / "feed.xml")
    assert [e.find(f"{ATOM}link").get("href").rsplit("/", 1)[1] for e in entries(root)] == [
        "item-4.html",
        "item-3.html",
        "item-2.html",
    ]
    assert len(list((Path(settings.output_dir) / "news").glob("*.html"))) == 5, "pages stay online"
    state = json.loads((Path(settings.output_dir) / website.STATE_FILE).read_text(encoding="utf-8"))
    assert sorted(state["entries"]) == ["item-2", "item-3", "item-4"]


def test_a_failing_template_leaves_the_old_feed_and_writes_nothing(settings: WebsiteChannel, monkeypatch) -> None:
    publish_news_item(item("old"), settings, now=T0)
    folder = Path(settings.output_dir)
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}

    real = website.render_html

    def broken(template: str, **context):
        if template == "website/feed.xml.j2":
            raise RuntimeError("template exploded")
        return real(template, **context)

    monkeypatch.setattr(website, "render_html", broken)
    with pytest.raises(RuntimeError, match="template exploded"):
        publish_news_item(item("new", title="新しいお知らせ"), settings, now=T0)

    after = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert after == before, "nothing may be written when rendering fails"
    assert not (folder / "news" / "new.html").exists()


def test_a_write_killed_midway_leaves_a_whole_feed_and_no_temp_files(settings: WebsiteChannel, monkeypatch) -> None:
    publish_news_item(item("old"), settings, now=T0)
    folder = Path(settings.output_dir)
    old_feed = (folder / "feed.xml").read_bytes()

    from koho.channels import _common

    real_replace = _common.os.replace

    def dying_replace(src, dst):
        if str(dst).endswith("feed.xml"):
            raise OSError("worker killed")
        return real_replace(src, dst)

    monkeypatch.setattr(_common.os, "replace", dying_replace)
    with pytest.raises(OSError, match="worker killed"):
        publish_news_item(item("new", title="新しいお知らせ"), settings, now=T0)
    monkeypatch.undo()

    assert (folder / "feed.xml").read_bytes() == old_feed
    parse_feed(folder / "feed.xml")
    assert not [p for p in folder.rglob("*.tmp")], "temporary files must be cleaned up"
    # The state was not committed, so the retry publishes the item as if for the first time.
    publish_news_item(item("new", title="新しいお知らせ"), settings, now=T0)
    assert len(entries(parse_feed(folder / "feed.xml"))) == 2


def test_emergency_banner_is_raised_and_cleared_by_an_all_clear(settings: WebsiteChannel) -> None:
    folder = Path(settings.output_dir)
    publish_news_item(
        item("quake", title="<地震>避難所を開設しました", emergency=True, category="防災"), settings, now=T0
    )
    banner = (folder / "emergency.html").read_text(encoding="utf-8")
    assert 'role="alert"' in banner and "&lt;地震&gt;避難所を開設しました" in banner
    assert 'href="https://www.city.example.jp/news/news/quake.html"' in banner
    root = parse_feed(folder / "feed.xml")
    terms = {c.get("term") for c in entries(root)[0].findall(f"{ATOM}category")}
    assert terms == {"emergency", "防災"}
    assert "緊急情報" in (folder / "index.html").read_text(encoding="utf-8")

    publish_news_item(
        item(
            "quake-clear",
            title="避難所を閉鎖しました",
            all_clear=True,
            category="防災",
            published_at=T0 + timedelta(hours=5),
        ),
        settings,
        now=T0 + timedelta(hours=5),
    )
    assert not (folder / "emergency.html").exists()
    assert 'role="alert"' not in (folder / "index.html").read_text(encoding="utf-8")
    newest = entries(parse_feed(folder / "feed.xml"))[0]
    assert {c.get("term") for c in newest.findall(f"{ATOM}category")} == {"all-clear", "防災"}

    publish_news_item(item("storm", emergency=True), settings, now=T0)
    assert clear_emergency(settings, now=T0) is True
    assert not (folder / "emergency.html").exists()
    assert clear_emergency(settings, now=T0) is False


def test_local_images_are_copied_and_described(settings: WebsiteChannel, tmp_path: Path) -> None:
    picture = tmp_path / "工事 map.png"
    picture.write_bytes(PNG)
    result = publish_news_item(
        item(images=[NewsImage(str(picture), alt="工事区間の地図"), "https://cdn.example.jp/photo.jpg"]),
        settings,
        now=T0,
    )
    copied = list((Path(settings.output_dir) / "media").iterdir())
    assert len(copied) == 1 and copied[0].read_bytes() == PNG
    html = result.path.read_text(encoding="utf-8")
    assert f'src="../media/{copied[0].name}" alt="工事区間の地図"' in html
    assert 'src="https://cdn.example.jp/photo.jpg"' in html
    content = entries(parse_feed(Path(settings.output_dir) / "feed.xml"))[0].findtext(f"{ATOM}content")
    assert f"https://www.city.example.jp/news/media/{copied[0].name}" in content


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"link": "javascript:alert(1)"}, "not an http"),
        ({"published_at": datetime(2026, 11, 30, 9, 0)}, "no time zone"),
        ({"title": "  "}, "title is empty"),
        ({"images": ["https://example.jp/x.svg"]}, "SVG"),
        ({"images": ["data:image/png;base64,AAAA"]}, "image"),
        ({"images": ["/no/such/file.png"]}, "no such image"),
    ],
)
def test_unsafe_or_broken_items_are_refused(settings: WebsiteChannel, overrides: dict, message: str) -> None:
    with pytest.raises(ChannelError, match=message):
        publish_news_item(item(**overrides), settings, now=T0)
    assert not (Path(settings.output_dir) / "feed.xml").exists()


def test_concurrent_publishers_lose_nothing(settings: WebsiteChannel) -> None:
    errors: list[BaseException] = []

    def worker(prefix: str) -> None:
        try:
            for n in range(8):
                publish_news_item(item(f"{prefix}-{n}", published_at=T0 + timedelta(minutes=n)), settings, now=T0)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(p,)) for p in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(entries(parse_feed(Path(settings.output_dir) / "feed.xml"))) == 16


def test_slugs_are_readable_or_hashed_and_unique() -> None:
    assert slug_for("2026-11-30-roads") == "2026-11-30-roads"
    assert slug_for("防災/地震") != slug_for("防災/台風")
    assert slug_for("Roads 1").startswith("roads-1-")
    assert all(c.isalnum() or c in "-_" for c in slug_for("../../etc/passwd"))


def test_a_folder_held_too_long_is_reported_not_waited_for(settings: WebsiteChannel, monkeypatch) -> None:
    from koho.channels import _common

    folder = Path(settings.output_dir)
    with _common.folder_lock(folder):  # another writer, holding the folder
        with pytest.raises(_common.FolderBusy, match="another publisher"):
            with _common.folder_lock(folder, timeout=0.05):
                pass
        monkeypatch.setattr(_common, "LOCK_TIMEOUT_SECONDS", 0.05)
        with pytest.raises(_common.FolderBusy):
            publish_news_item(item(), settings, now=T0)
    publish_news_item(item(), settings, now=T0)  # released: the next writer goes ahead
    assert len(entries(parse_feed(folder / "feed.xml"))) == 1


# ---------------------------------------------------------------------------------------------
# the channel adapter: deliveries to the "website" pseudo-account


@pytest.fixture
def adapter(tmp_path: Path) -> website.WebsiteAdapter:
    from tests.unit.calendar.calendar_helpers import write_config

    return website.WebsiteAdapter(write_config(tmp_path / "config", website_dir=tmp_path / "site"))


def delivery(entry_id: str = "gomi", **payload):
    from koho.delivery.publishers import Publication

    values = {
        "text": "年末年始のごみ収集日程です。\n\n詳しくは市のページへ。",
        "link": "https://www.city.example.jp/gomi",
    }
    values.update(payload)
    return Publication(
        entry_id=entry_id,
        origin=values.pop("origin", "calendar"),
        title="ごみ収集",
        text="(fitted)",
        payload=values,
        due_at=T0,
    )


def publish(adapter: website.WebsiteAdapter, publication, key: str = "k-1"):
    return adapter.publish_once(publication, idempotency_key=key, maybe_sent_before=False, since=None)


def test_a_delivery_becomes_one_news_item_with_the_full_text(adapter: website.WebsiteAdapter) -> None:
    first = publish(adapter, delivery())
    again = publish(adapter, delivery())
    site = Path(adapter.config.policy.channels.website.output_dir)
    [entry] = entries(parse_feed(site / "feed.xml"))
    assert entry.findtext(f"{ATOM}title") == "ごみ収集"
    page = (site / "news" / "gomi.html").read_text(encoding="utf-8")
    assert "詳しくは市のページへ。" in page and "(fitted)" not in page, "the page has the entry's text, never fitted"
    assert first == again and first.url == adapter.full_text_url("gomi")
    assert not (site / "emergency.html").exists()
    publish(adapter, delivery("kinkyu", origin="emergency"))
    assert "kinkyu" in (site / "emergency.html").read_text(encoding="utf-8")


def test_what_the_website_cannot_show_fails_the_delivery_and_a_busy_folder_retries_it(
    adapter: website.WebsiteAdapter, monkeypatch
) -> None:
    from koho.channels import _common
    from koho.platforms.errors import PermanentlyRejected, TransientError

    with pytest.raises(PermanentlyRejected, match=r"website: news item 'gomi': link 'javascript:alert\(1\)'"):
        publish(adapter, delivery(link="javascript:alert(1)"))
    site = Path(adapter.config.policy.channels.website.output_dir)
    monkeypatch.setattr(_common, "LOCK_TIMEOUT_SECONDS", 0.05)
    with _common.folder_lock(site), pytest.raises(TransientError, match="another publisher"):
        publish(adapter, delivery())
    assert not (site / "feed.xml").exists()


def test_removing_an_item_takes_its_page_feed_entry_and_banner_down(settings: WebsiteChannel) -> None:
    folder = Path(settings.output_dir)
    publish_news_item(item("keep"), settings, now=T0)
    publish_news_item(item("alert", title="避難指示", emergency=True), settings, now=T0)
    assert (folder / "emergency.html").exists()

    assert website.remove_news_item("alert", settings, now=T0)

    assert [e.findtext(f"{ATOM}title") for e in entries(parse_feed(folder / "feed.xml"))] == ["道路工事のお知らせ"]
    assert not (folder / "news" / "alert.html").exists() and (folder / "news" / "keep.html").exists()
    assert not (folder / "emergency.html").exists(), "a retracted emergency takes its banner with it"
    assert "alert" not in (folder / "index.html").read_text(encoding="utf-8")
    assert not website.remove_news_item("alert", settings, now=T0), "nothing left to remove"


def test_an_item_trimmed_from_the_feed_still_has_its_page_removed(settings: WebsiteChannel) -> None:
    folder = Path(settings.output_dir)
    publish_news_item(item("old", published_at=T0 - timedelta(days=1)), settings, now=T0, max_entries=1)
    publish_news_item(item("new"), settings, now=T0, max_entries=1)
    assert (folder / "news" / "old.html").exists()  # out of the feed, page still served

    assert website.remove_news_item("old", settings, now=T0)

    assert not (folder / "news" / "old.html").exists()
    assert len(entries(parse_feed(folder / "feed.xml"))) == 1
