"""The calendar view (FastAPI app) against a seeded SQLite ledger: month and week pages, status
badges and links, escaping, Japan-time day placement across the UTC boundary, the account
filter, the JSON endpoint, bad input, an unavailable ledger and the authentication guard."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from koho.ledger.db import Ledger, LedgerConfigError
from koho.ui.app import create_app
from koho.ui.calendar_data import dag_run_path, window


def mounted(app: FastAPI) -> TestClient:
    """The app mounted under /koho, as Airflow's api-server mounts plugin apps."""
    server = FastAPI()
    server.mount("/koho", app)
    return TestClient(server, base_url="http://airflow.test/koho/")


@pytest.fixture(scope="module")
def client(seeded_ledger: Ledger) -> TestClient:
    return mounted(create_app(seeded_ledger, require_auth=False, dag_ids={}))


def cell(html: str, day: str) -> str:
    """The HTML of the calendar cell(s) for one day (month view: one <td>)."""
    parts = re.findall(rf'<td[^>]*data-date="{day}"[^>]*>(.*?)</td>', html, flags=re.S)
    assert parts, f"no cell for {day}"
    return "".join(parts)


def get_month(client: TestClient, **params) -> str:
    response = client.get("calendar", params={"view": "month", "date": "2026-11-15", **params})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    return response.text


def test_month_view_shows_every_status_with_its_links(client: TestClient) -> None:
    html = get_month(client)
    assert '<html lang="ja">' in html and "2026年11月" in html

    festival = cell(html, "2026-11-10")
    assert "公開済み" in festival and "09:30" in festival
    assert '<a href="https://x.com/koho_city/status/1" target="_blank" rel="noopener noreferrer">' in festival
    assert 'href="../dags/koho_posting/runs/scheduled__2026-11-10T00%3A30%3A00%2B00%3A00" target="_top"' in festival
    assert "javascript:" not in html, "a platform URL that is not http(s) is never linked"

    failed = cell(html, "2026-11-12")
    assert "失敗" in failed
    assert "理由 / reason: token expired &lt;b&gt;reconnect&lt;/b&gt; the account" in failed
    assert 'href="../dag_runs?run_id_pattern=manual__2026-11-12T03%3A00%3A00%2B00%3A00"' in failed

    assert "承認待ち" in cell(html, "2026-11-20")
    assert "取消" in cell(html, "2026-11-21")
    assert "送信中" in cell(html, "2026-11-23") and "origin-emergency" in cell(html, "2026-11-23")
    thread = cell(html, "2026-11-22")
    assert "失敗" in thread and "duplicate content rejected" in thread and "2件のスレッド" in thread
    unplanned = cell(html, "2026-11-25")
    assert "まだ配信計画のない投稿" in unplanned and "未割当" in unplanned
    assert "先月の投稿" not in html


def test_titles_are_escaped(client: TestClient) -> None:
    html = get_month(client)
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;秋祭り" in html


def test_days_are_japan_days_across_the_utc_boundary(client: TestClient) -> None:
    html = get_month(client)
    # 14:30 UTC on 30 Nov is 23:30 JST the same day; 15:30 UTC on 30 Nov is 00:30 JST on 1 Dec.
    assert "月末のお知らせ" in cell(html, "2026-11-30") and "23:30" in cell(html, "2026-11-30")
    assert "師走のお知らせ" in cell(html, "2026-12-01") and "00:30" in cell(html, "2026-12-01")
    assert "師走のお知らせ" not in cell(html, "2026-11-30")
    assert re.search(r'<td class="out[^"]*" data-date="2026-12-01"', html), "December days are greyed in November"


def test_week_view_has_a_row_per_account(client: TestClient) -> None:
    response = client.get("calendar", params={"view": "week", "date": "2026-12-01"})
    assert response.status_code == 200
    html = response.text
    assert "2026年11月29日〜12月5日" in html
    rows = re.findall(r'<th scope="row" class="account">(.*?)</th>', html)
    assert rows == ["こほ市（x）", "こほ市子育て（facebook）"], "retired accounts without posts are left out"
    city_row = html.split('<th scope="row" class="account">こほ市（x）</th>')[1].split("</tr>")[0]
    assert "師走のお知らせ" in cell(city_row, "2026-12-01")
    assert "月末のお知らせ" in cell(city_row, "2026-11-30")
    assert 'href="calendar?view=week&amp;date=2026-11-24"' in html
    assert 'href="calendar?view=week&amp;date=2026-12-08"' in html


def test_previous_and_next_keep_the_filter(client: TestClient) -> None:
    html = get_month(client, account="city_x")
    assert 'href="calendar?view=month&amp;date=2026-10-01&amp;account=city_x" rel="prev"' in html
    assert 'href="calendar?view=month&amp;date=2026-12-01&amp;account=city_x" rel="next"' in html
    assert '<option value="city_x" selected>' in html


def test_account_filter(client: TestClient) -> None:
    html = get_month(client, account="kosodate_fb")
    assert "子育て支援センターのお知らせ" in html and "秋祭り" in html
    assert "月末のお知らせ" not in html and "まだ配信計画のない投稿" not in html
    data = client.get("calendar.json", params={"date": "2026-11-15", "account": "kosodate_fb"}).json()
    accounts = {i["account_id"] for d in data["days"] for i in d["items"]}
    assert accounts == {"kosodate_fb"}


def test_json_endpoint_has_the_same_data(client: TestClient) -> None:
    response = client.get("calendar.json", params={"view": "month", "date": "2026-11-15"})
    assert response.status_code == 200
    data = response.json()
    assert data["view"] == "month" and data["first"] == "2026-11-01" and data["last"] == "2026-12-05"
    assert data["timezone"] == "Asia/Tokyo" and data["previous"] == "2026-10-01" and data["next"] == "2026-12-01"
    days = {d["date"]: d for d in data["days"]}
    assert len(days) == 35
    assert days["2026-11-03"]["holiday"] == "文化の日"
    festival = {i["account_id"]: i for i in days["2026-11-10"]["items"]}
    assert festival["city_x"]["status"] == "published"
    assert festival["city_x"]["status_label_ja"] == "公開済み"
    assert festival["city_x"]["url"] == "https://x.com/koho_city/status/1"
    assert festival["city_x"]["due_at"] == "2026-11-10T00:30:00Z"
    assert festival["city_x"]["due_at_local"] == "2026-11-10T09:30:00+09:00"
    assert festival["city_x"]["dag_run_path"].startswith("dags/koho_posting/runs/")
    assert festival["kosodate_fb"]["url"] is None
    assert [i["title"] for i in days["2026-12-01"]["items"]] == ["師走のお知らせ"]
    unplanned = days["2026-11-25"]["items"][0]
    assert unplanned["kind"] == "entry" and unplanned["account_id"] is None
    assert {a["id"] for a in data["accounts"]} == {"city_x", "kosodate_fb", "old_line"}


@pytest.mark.parametrize(
    ("params", "message"),
    [({"view": "year"}, "view must be one of"), ({"date": "30/11/2026"}, "date must look like")],
)
def test_bad_parameters_get_a_clear_400(client: TestClient, params: dict, message: str) -> None:
    html = client.get("calendar", params=params)
    assert html.status_code == 400 and message in html.text and "<html" in html.text
    as_json = client.get("calendar.json", params=params)
    assert as_json.status_code == 400 and message in as_json.json()["detail"]


def test_an_unavailable_ledger_is_reported_not_crashed() -> None:
    def broken() -> Ledger:
        raise LedgerConfigError("Airflow connection 'koho_db' for the Koho ledger could not be read")

    client = mounted(create_app(broken, require_auth=False))
    response = client.get("calendar")
    assert response.status_code == 503 and "koho_db" in response.text
    assert client.get("calendar.json").status_code == 503


def test_pages_carry_protective_headers(client: TestClient) -> None:
    headers = client.get("calendar", params={"date": "2026-11-15"}).headers
    assert "default-src 'none'" in headers["content-security-policy"]
    assert headers["cache-control"] == "no-store"


def test_data_routes_require_an_airflow_user(seeded_ledger: Ledger) -> None:
    client = mounted(create_app(seeded_ledger))
    assert client.get("calendar").status_code == 401
    assert client.get("calendar.json").status_code == 401
    assert client.get("icon.svg").status_code == 200


def test_windows_and_run_links() -> None:
    from datetime import date

    assert window("month", date(2026, 11, 15))[:2] == (date(2026, 11, 1), date(2026, 12, 5))
    assert window("week", date(2026, 11, 29))[:2] == (date(2026, 11, 29), date(2026, 12, 5))
    assert window("week", date(2026, 12, 5))[:2] == (date(2026, 11, 29), date(2026, 12, 5))
    assert dag_run_path("manual__1", "calendar", {"calendar": "koho_posting"}) == "dags/koho_posting/runs/manual__1"
    assert dag_run_path(None, "calendar", {}) is None
