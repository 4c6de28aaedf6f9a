"""The sandbox timeline: what the fake platforms received, deep-linkable by the remote id Koho records,
previews of posts not sent, untrusted text shown as text, and API docs that load nothing from outside."""

from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest

from koho.accounts.sync import registry_rows
from koho.config import load_config
from koho.platforms.base import RetryPolicy
from koho.platforms.registry import hook_for
from koho.platforms.types import OutgoingPost
from sandbox.bootstrap import register_accounts
from sandbox.timeline import anchor
from tests.conftest import set_connection

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)> 市民の声'


@pytest.fixture
def city(sandbox, monkeypatch) -> dict:
    """The demo accounts in the sandbox, with their connections: {account id: registry row}."""
    rows = {row["id"]: row for row in registry_rows(load_config())}
    connections = register_accounts(sandbox.url, rows.values(), {i: f"token-{i}" for i in rows})
    for conn_id, fields in connections.items():
        set_connection(monkeypatch, conn_id, **fields)
    return {"rows": rows, "connections": connections}


def publish(city: dict, account_id: str, post: OutgoingPost, key: str):
    row = city["rows"][account_id]
    hook = hook_for(
        row["platform"],
        row["connection_id"],
        sleep=lambda _s: None,
        retry=RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02),
    )
    return hook.publish(post, idempotency_key=key)


def page(sandbox, path: str = "/_timeline", **params):
    return sandbox.http.get(f"{sandbox.url}{path}", params=params, timeout=10, allow_redirects=False)


def section(html: str, platform: str) -> str:
    """One platform's part of the timeline page."""
    return next(s for s in html.split("<section")[1:] if s.startswith(f' class="{platform}"')).split("</section>")[0]


def test_published_posts_show_per_platform_with_thread_and_link_card(sandbox, city):
    first = publish(city, "city-x", OutgoingPost("1/2 こほ市からのお知らせです。"), "k1")
    publish(
        city, "city-x", OutgoingPost("2/2 詳しくはこちら https://www.city.example.jp/a", reply_to=first.remote_id), "k2"
    )
    toot = publish(city, "city-mastodon", OutgoingPost("マストドンへの投稿です。"), "k3")

    html = page(sandbox).text

    x_section = section(html, "x")
    root = x_section[x_section.index(f'id="{anchor("x", first.remote_id)}"') :]
    assert root.index("1/2 こほ市") < root.index('class="thread"') < root.index("2/2 詳しくは")
    assert "linkcard" in root and "www.city.example.jp" in root
    assert f'id="{anchor("mastodon", toot.remote_id)}"' in section(html, "mastodon")
    assert "マストドンへの投稿です。" in section(html, "mastodon") and "マストドン" not in x_section
    assert "@koho_city_sample" in x_section  # the handle as X writes it


def test_the_remote_id_koho_records_leads_to_the_post(sandbox, city):
    sent = publish(city, "city-bluesky", OutgoingPost("ブルースカイへの投稿です。"), "k4")

    response = page(sandbox, "/_timeline/post", platform="bluesky", id=sent.remote_id)

    assert response.status_code == 303
    target = response.headers["location"]
    assert target.endswith(f"#{anchor('bluesky', sent.remote_id)}") and "platform=bluesky" in target
    followed = sandbox.http.get(
        f"{sandbox.url}/_timeline/post?{urlencode({'platform': 'bluesky', 'id': sent.remote_id})}"
    )
    assert followed.status_code == 200 and f'id="{anchor("bluesky", sent.remote_id)}"' in followed.text
    missing = page(sandbox, "/_timeline/post", platform="bluesky", id="at://nobody/app.bsky.feed.post/none")
    assert missing.status_code == 404 and "見つかりません" in missing.text


def test_post_text_is_shown_as_text_never_as_markup(sandbox, city):
    publish(city, "city-mastodon", OutgoingPost(HOSTILE), "k5")

    response = page(sandbox, platform="mastodon")

    assert "<script>alert" not in response.text and "<img src=x" not in response.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in response.text
    assert "default-src 'none'" in response.headers["content-security-policy"]


def test_filters_keep_to_one_platform(sandbox, city):
    publish(city, "city-x", OutgoingPost("エックスだけ"), "k6")
    publish(city, "city-mastodon", OutgoingPost("マストドンだけ"), "k7")

    html = page(sandbox, platform="x").text

    assert "エックスだけ" in html and "マストドンだけ" not in html


def test_a_preview_renders_a_post_not_sent_as_its_platform_would(sandbox):
    parts = ["1/2 台風の接近に伴い、", "2/2 避難所を開設しました。 https://www.city.example.jp/bousai/"]
    response = page(
        sandbox,
        "/_timeline/preview",
        platform="x",
        handle="koho_city_sample",
        name="こほ市公式 X",
        part=parts,
        image=["bousai-kunren.png"],
        link="https://www.city.example.jp/bousai/",
        account="city-x",
    )

    assert response.status_code == 200
    html = response.text
    assert "未送信" in html and "@koho_city_sample" in html
    assert html.index("1/2 台風") < html.index('class="thread"') < html.index("2/2 避難所")
    assert "bousai-kunren.png" in html and 'class="linkcard"' in html
    assert page(sandbox, "/_timeline/preview", platform="myspace").status_code == 404


def test_a_preview_link_may_carry_a_long_thread(sandbox):
    parts = ["こほ市の長いお知らせです。" * 40] * 12  # ~60 KB once percent-encoded: past h11's default head size

    response = page(sandbox, "/_timeline/preview", platform="facebook", name="こほ市", part=parts)

    assert response.status_code == 200 and response.text.count('class="post facebook"') == 12


def test_a_preview_link_card_needs_a_web_address(sandbox):
    html = page(sandbox, "/_timeline/preview", platform="x", part=["本文"], link="javascript:alert(1)").text
    assert "javascript:" not in html and "linkcard" not in html.split("</style>", 1)[1]


def test_the_api_docs_load_nothing_from_outside(sandbox):
    html = page(sandbox, "/_docs").text
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(s.startswith("/") for s in sources), sources
    for source in sources:
        assert sandbox.http.get(f"{sandbox.url}{source}", timeout=10).status_code == 200, source
    assert "/_timeline" in sandbox.http.get(f"{sandbox.url}/_openapi.json", timeout=10).json()["paths"]
