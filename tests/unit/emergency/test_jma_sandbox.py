"""The sandbox's JMA feed behaves like the real static server: Atom, links, 304s, faults."""

from __future__ import annotations

import requests

from koho.emergency.jma import parse_document, parse_feed
from sandbox.platforms.jma import configure_city, feed_request_count, publish_sample

FEED = "/jma/developer/xml/feed/extra.xml"


def test_initial_feed_lists_the_samples_and_links_resolve(sandbox):
    response = requests.get(sandbox.url + FEED, timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/atom+xml")
    feed = parse_feed(response.content, sandbox.url + FEED)
    assert feed.title == "高頻度（随時）"
    assert len(feed.entries) == 5  # heavy rain twice, storm, its cancellation, a drill
    assert len({e.link for e in feed.entries}) == 4
    assert [e.updated for e in feed.entries] == sorted((e.updated for e in feed.entries), reverse=True)
    for entry in feed.entries:
        assert entry.link.startswith(f"{sandbox.url}/jma/developer/xml/data/") and entry.id == entry.link
        assert entry.title == "気象警報・注意報（Ｈ２７）" and entry.author == "銚子地方気象台"
        doc = requests.get(entry.link, timeout=5)
        assert doc.status_code == 200 and doc.headers["content-type"].startswith("application/xml")
        assert parse_document(doc.content, entry.link).report_time is not None
    assert {parse_document(requests.get(e.link, timeout=5).content, e.link).status for e in feed.entries} == {
        "通常",
        "訓練",
    }


def test_conditional_requests(sandbox):
    first = requests.get(sandbox.url + FEED, timeout=5)
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    assert requests.get(sandbox.url + FEED, headers={"If-None-Match": etag}, timeout=5).status_code == 304
    unchanged = requests.get(sandbox.url + FEED, headers={"If-Modified-Since": modified}, timeout=5)
    assert unchanged.status_code == 304 and unchanged.content == b"" and unchanged.headers["etag"] == etag

    published = publish_sample(sandbox.state, "special")
    changed = requests.get(
        sandbox.url + FEED, headers={"If-None-Match": etag, "If-Modified-Since": modified}, timeout=5
    )
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert changed.headers["last-modified"] != modified  # moves on even within the same second
    assert requests.get(sandbox.url + FEED, headers={"If-Modified-Since": modified}, timeout=5).status_code == 200
    assert published["name"] in changed.text and published["name"].endswith("_0_VPWW54_120000.xml")
    # If-None-Match decides when both are sent (RFC 9110)
    stale = requests.get(
        sandbox.url + FEED, headers={"If-None-Match": '"nope"', "If-Modified-Since": modified}, timeout=5
    )
    assert stale.status_code == 200


def test_publishing_twice_lists_the_document_twice(sandbox):
    before = parse_feed(requests.get(sandbox.url + FEED, timeout=5).content, FEED)
    publish_sample(sandbox.state, "special")
    publish_sample(sandbox.state, "special")
    after = parse_feed(requests.get(sandbox.url + FEED, timeout=5).content, FEED)
    assert len(after.entries) == len(before.entries) + 2
    assert after.entries[0].link == after.entries[1].link


def test_publish_over_http_and_unknown_things(sandbox):
    assert requests.post(sandbox.url + "/jma/_sandbox/publish/special", timeout=5).status_code == 200
    assert requests.post(sandbox.url + "/jma/_sandbox/publish/nothing", timeout=5).status_code == 404
    assert requests.get(sandbox.url + "/jma/developer/xml/data/nothing.xml", timeout=5).status_code == 404
    assert requests.get(sandbox.url + "/jma/developer/xml/feed/nothing.xml", timeout=5).status_code == 404
    eqvol = requests.get(sandbox.url + "/jma/developer/xml/feed/eqvol.xml", timeout=5)
    assert eqvol.status_code == 200 and parse_feed(eqvol.content, "eqvol.xml").entries == ()


def test_the_demo_city_is_configurable(sandbox):
    configure_city(sandbox.state, "1222400", "かまがや市")
    feed = parse_feed(requests.get(sandbox.url + FEED, timeout=5).content, sandbox.url + FEED)
    heavy = next(e for e in feed.entries if "201205" in e.link)
    areas = parse_document(requests.get(heavy.link, timeout=5).content, heavy.link).areas
    assert (areas[0].area_code, areas[0].area_name) == ("1222400", "かまがや市")


def test_faults_apply_and_requests_are_counted(sandbox):
    count = feed_request_count(sandbox.state)
    sandbox.fault("jma", "server_error", count=1)
    failed = requests.get(sandbox.url + FEED, timeout=5)
    assert failed.status_code == 503 and failed.headers["content-type"].startswith("text/html")
    assert requests.get(sandbox.url + FEED, timeout=5).status_code == 200
    assert feed_request_count(sandbox.state) == count + 2
