"""Malformed calendar input, one case per row: every problem names the right file and line (or
sheet cell), the right field and says what is wrong; the valid entry beside it still loads.

Layout of the generated files (so the expected places below can be read off):

* YAML: ``entries:`` on line 1, the good entry on lines 2-6, the broken one from line 7:
  id 7, title 8, publish_at 9, targets 10, text 11, any further field 12, 13, ...
* CSV: header on line 1, the good row on line 2, the broken row on line 3.
* Excel: sheet カレンダー, header row 1, good row 2, broken row 3; columns A ID, B タイトル,
  C 公開日時, D 対象, E チャネル, F 本文, G リンク, H 画像, I ハッシュタグ, J 分類, K 承認,
  L 祝日可, M 状態, N X用本文, O Instagram用本文, P a column the case adds.
"""

from __future__ import annotations

from datetime import datetime, time

import pytest

from tests.unit.calendar.calendar_helpers import TABLE_HEADERS, csv_bytes, place, table_rows, write_xlsx, yaml_text

DROP = object()
GOOD_YAML = {
    "id": "good-1",
    "title": "正常",
    "publish_at": "2027-02-01 10:00",
    "targets": ["city-x"],
    "text": "正常な投稿です",
}
BAD_YAML = {
    "id": "bad-1",
    "title": "壊れた投稿",
    "publish_at": "2027-02-01 12:00",
    "targets": ["city-x"],
    "text": "本文",
}
GOOD_ROW = {
    "ID": "good-1",
    "タイトル": "正常",
    "公開日時": "2027-02-01 10:00",
    "対象": "city-x",
    "本文": "正常な投稿です",
}
BAD_ROW = {"ID": "bad-1", "タイトル": "壊れた投稿", "公開日時": "2027-02-01 12:00", "対象": "city-x", "本文": "本文"}

LONG_LINE = "お知らせ。" * 1001  # 5005 UTF-16 units: over LINE's 5000, and LINE has no threads
LONG_INSTAGRAM = "写真の説明。" * 370  # 2220 units: over Instagram's 2200
GOOD_HEADER = 'entries:\n  - id: good-1\n    title: 正常\n    publish_at: "2027-02-01 10:00"\n    targets: [city-x]\n    text: 正常な投稿です\n'

Y, C, X = "yaml", "csv", "xlsx"
YL = "bad.yaml:{}".format
CL = "bad.csv:{}".format
XC = "bad.xlsx!カレンダー!{}".format

# (kind, changes to the broken entry (or whole raw YAML text), expected place, field fragment, message fragment, options)
CASES = [
    # ---------------------------------------------------------------- YAML: time
    (Y, {"publish_at": "2027-02-30 09:00"}, YL(9), "entries[1].publish_at", "not a real date", {}),
    (Y, {"publish_at": "来週の月曜"}, YL(9), "publish_at", "cannot read '来週の月曜'", {}),
    (
        Y,
        GOOD_HEADER + "  - id: bad-1\n    title: t\n    publish_at: 2027-02-01\n    targets: [city-x]\n    text: x\n",
        YL(9),
        "publish_at",
        "has no time of day",
        {},
    ),
    (Y, {"publish_at": "2020-01-06 09:00"}, YL(9), "publish_at", "is in the past", {}),
    (Y, {"publish_at": "2027-02-01 10:00+25:00"}, YL(9), "publish_at", "cannot read", {}),
    (Y, {"publish_at": "2027-02-01 23:00"}, YL(9), "publish_at", "quiet hours 21:00-07:00", {"account": "city-x"}),
    (
        Y,
        {"publish_at": "2027-02-11 12:00"},
        YL(9),
        "publish_at",
        "public holiday (建国記念の日)",
        {"severity": "warning"},
    ),
    (
        Y,
        {"publish_at": "2027-02-01 10:10"},
        YL(9),
        "publish_at",
        "only 10 min from entry 'good-1'",
        {"account": "city-x"},
    ),
    # ---------------------------------------------------------------- YAML: id, title, text, unknown fields
    (Y, {"id": "bad id!"}, YL(7), "entries[1].id", "is not a valid id", {}),
    (Y, {"id": "good-1"}, YL(7), "entries[1].id", "duplicate id 'good-1': already used at bad.yaml:2", {}),
    (Y, {"title": "長" * 201}, YL(8), "title", "at most 200", {}),
    (Y, {"text": ""}, YL(11), "entries[1].text", "must not be empty", {}),
    (Y, {"text": DROP}, YL(7), "entries[1].text", "required field is missing", {}),
    (Y, {"title": DROP}, YL(7), "entries[1].title", "required field is missing", {}),
    (Y, {"aproval": True}, YL(12), "entries[1].aproval", "did you mean 'approval'", {}),
    (Y, {"accounts": ["city-x"]}, YL(12), "accounts", "filled in by Koho", {}),
    (Y, {"title": "=1+1"}, YL(8), "title", "spreadsheet would run it as a formula", {}),
    (Y, {"text": "-2+3+cmd|' /C calc'!A0"}, YL(11), "text", "command (DDE) call", {}),
    # ---------------------------------------------------------------- YAML: targets
    (Y, {"targets": ["city-x", "nobody"]}, YL(10), "entries[1].targets[1]", "unknown account or group 'nobody'", {}),
    (Y, {"targets": ["city-xx"]}, YL(10), "targets[0]", "did you mean 'city-x'", {}),
    (Y, {"targets": ["topic:sports"]}, YL(10), "targets[0]", "unknown topic 'sports'", {}),
    (Y, {"targets": ["platform:tiktok"]}, YL(10), "targets[0]", "no account on platform 'tiktok'", {}),
    (Y, {"targets": ["platform:youtube"]}, YL(10), "targets[0]", "does not post to youtube", {}),
    (Y, {"targets": ["city-x", "old-x"]}, YL(10), "targets[1]", "retired", {"account": "old-x"}),
    (
        Y,
        {"targets": ["city-x", "paused-facebook"]},
        YL(10),
        "targets[1]",
        "suspended",
        {"account": "paused-facebook", "severity": "warning"},
    ),
    (Y, {"targets": ["city-youtube"]}, YL(10), "targets[0]", "does not post to youtube", {"account": "city-youtube"}),
    (Y, {"targets": []}, YL(10), "targets", "a social post needs targets", {}),
    # ---------------------------------------------------------------- YAML: channels, status, flags
    (Y, {"channels": ["social", "fax"]}, YL(12), "channels[1]", "'fax' is not allowed", {}),
    (Y, {"status": "done"}, YL(12), "status", "expected 'planned' or 'cancelled'", {}),
    (Y, {"approval": "maybe"}, YL(12), "approval", "is not a yes/no value", {}),
    (Y, {"allow_holiday": [1]}, YL(12), "allow_holiday", "is not a yes/no value", {}),
    # ---------------------------------------------------------------- YAML: link, images, hashtags
    (Y, {"link": "http://www.city.example.jp/"}, YL(12), "link", "must be an https:// URL", {}),
    (Y, {"link": "https://"}, YL(12), "link", "not a valid URL", {}),
    (Y, {"images": ["missing.png"]}, YL(12), "images[0]", "'missing.png' not found in include/media", {}),
    (Y, {"images": ["../secret.png"]}, YL(12), "images", "must be a file name inside include/media", {}),
    (Y, {"images": ["ok.png", "notimage.png"]}, YL(12), "images[1]", "not a PNG, JPEG, GIF or WebP", {}),
    (Y, {"images": ["huge.png"]}, YL(12), "images[0]", "the limit is 8 MB", {}),
    (Y, {"images": ["http://cdn.example.jp/a.png"]}, YL(12), "images", "must be an https:// URL", {}),
    (
        Y,
        {"targets": ["city-instagram", "city-x"]},
        YL(7),
        "entries[1].images",
        "posts need an image",
        {"account": "city-instagram"},
    ),
    (Y, {"hashtags": ["ok", "bad tag"]}, YL(12), "hashtags", "hashtag 'bad tag'", {}),
    # ---------------------------------------------------------------- YAML: text fitting and overrides
    (
        Y,
        {"targets": ["city-line", "city-x"], "text": LONG_LINE},
        YL(11),
        "text",
        "does not fit line",
        {"account": "city-line"},
    ),
    (
        Y,
        {"targets": ["city-instagram"], "images": ["ok.png"], "overrides": {"instagram": LONG_INSTAGRAM}},
        YL(13),
        "overrides",
        "does not fit instagram",
        {"account": "city-instagram"},
    ),
    (Y, {"overrides": {"tiktok": "短い本文"}}, YL(12), "overrides.tiktok", "unknown platform or account 'tiktok'", {}),
    (Y, {"overrides": {"x": ""}}, YL(12), "overrides.x", "must not be empty", {}),
    (Y, {"overrides": {"line": "LINE 用"}}, YL(12), "overrides.line", "has no effect", {"severity": "warning"}),
    # ---------------------------------------------------------------- YAML: file structure
    (Y, GOOD_HEADER + "  - id: [unclosed\n", YL(8), None, "YAML syntax error", {"good_loads": False}),
    (Y, GOOD_HEADER + "  - just a sentence\n", YL(7), "entries[1]", "must be a mapping", {}),
    (Y, GOOD_HEADER + "notes: hello\n", YL(7), "notes", "unknown top-level key", {}),
    (Y, "- id: x\n", YL(1), None, "expected a mapping with an 'entries:'", {"good_loads": False}),
    (Y, GOOD_HEADER + "  - id: bad-1\n    title: a\n    title: b\n", YL(9), "title", "duplicate key", {}),
    # ---------------------------------------------------------------- CSV
    (C, {"公開日時": "2027/13/01 9:00"}, CL(3), "公開日時", "not a real date", {}),
    (C, {"公開日時": ""}, CL(3), "公開日時", "required field is missing", {}),
    (C, {"公開日時": "2027年2月1日"}, CL(3), "公開日時", "has no time of day", {}),
    (C, {"承認": "たぶん"}, CL(3), "承認", "expected 要/不要, はい/いいえ", {}),
    (C, {"祝日可": "？"}, CL(3), "祝日可", "not a yes/no value", {}),
    (C, {"対象": "city-x、nobody"}, CL(3), "対象", "unknown account or group 'nobody'", {}),
    (C, {"対象": ""}, CL(3), "対象", "a social post needs targets", {}),
    (C, {"本文": "=SUM(A1:A3)"}, CL(3), "本文", "starts with '='", {}),
    (C, {"本文": "@SUM(A1:A2)"}, CL(3), "本文", "function call ('SUM(')", {}),
    (C, {"本文": "\t=cmd"}, CL(3), "本文", "after a tab", {}),
    (C, {"タイトル": '+HYPERLINK("https://evil.example")'}, CL(3), "タイトル", "function call", {}),
    (C, {"タイトル": "#N/A"}, CL(3), "タイトル", "spreadsheet error '#N/A'", {}),
    (C, {"リンク": "http://www.city.example.jp/"}, CL(3), "リンク", "https://", {}),
    (C, {"画像": "missing.png"}, CL(3), "画像", "not found", {}),
    (C, {"ID": ""}, CL(3), "ID", "required field is missing", {}),
    (C, {"ID": "日本語のID"}, CL(3), "ID", "is not a valid id", {}),
    (C, {"ID": "good-1"}, CL(3), "ID", "already used at bad.csv:2", {}),
    (C, {"チャネル": "SNS、ファクス"}, CL(3), "チャネル", "'ファクス' is not allowed", {}),
    (C, {"状態": "保留"}, CL(3), "状態", "expected 'planned' or 'cancelled'", {}),
    (C, {"X用本文": "=1"}, CL(3), "X用本文", "formula", {}),
    (C, {"対象": "city-line", "本文": LONG_LINE}, CL(3), "本文", "does not fit line", {"account": "city-line"}),
    (C, {"担当課": "広報課"}, CL(1), "担当課", "unknown column '担当課'", {}),
    (C, {"担当課": "広報課"}, CL(3), "担当課", "value in the unknown column", {}),
    (C, {"本文": DROP}, CL(1), None, "lacks the column(s) 本文", {"good_loads": False}),
    (C, {"公開日時": "2027-02-01 06:30"}, CL(3), "公開日時", "quiet hours", {"account": "city-x"}),
    # ---------------------------------------------------------------- Excel
    (X, {"公開日時": datetime(2020, 1, 6, 9, 0)}, XC("C3"), "公開日時", "is in the past", {}),
    (
        X,
        {"公開日時": datetime(2027, 2, 1), "__formats__": {"C3": "yyyy-mm-dd"}},
        XC("C3"),
        "公開日時",
        "has no time of day",
        {},
    ),
    (X, {"公開日時": time(9, 0)}, XC("C3"), "公開日時", "expected a date and time", {}),
    (X, {"公開日時": "来週"}, XC("C3"), "公開日時", "cannot read", {}),
    (X, {"公開日時": "=TODAY()+1"}, XC("C3"), "公開日時", "starts with '='", {}),
    (X, {"公開日時": datetime(2027, 2, 1, 22, 0)}, XC("C3"), "公開日時", "quiet hours", {"account": "city-x"}),
    (X, {"承認": "maybe"}, XC("K3"), "承認", "not a yes/no value", {}),
    (X, {"対象": "nobody"}, XC("D3"), "対象", "unknown account or group", {}),
    (X, {"対象": "city-x\nold-x"}, XC("D3"), "対象", "retired", {"account": "old-x"}),
    (X, {"本文": DROP}, XC("1:1"), None, "lacks the column(s) 本文", {"good_loads": False}),
    (X, {"本文": ""}, XC("F3"), "本文", "required field is missing", {}),
    (X, {"画像": "nope.png"}, XC("H3"), "画像", "not found", {}),
    (X, {"リンク": "ftp://files.example.jp/a"}, XC("G3"), "リンク", "https://", {}),
    (X, {"ハッシュタグ": "タグ!"}, XC("I3"), "ハッシュタグ", "hashtag 'タグ!'", {}),
    (X, {"状態": "終了"}, XC("M3"), "状態", "expected 'planned' or 'cancelled'", {}),
    (X, {"チャネル": "fax"}, XC("E3"), "チャネル", "not allowed", {}),
    (X, {"ID": "good-1"}, XC("A3"), "ID", "already used at bad.xlsx!カレンダー!A2", {}),
    (X, {"タイトル": "#REF!"}, XC("B3"), "タイトル", "spreadsheet error '#REF!'", {}),
    (X, {"タイトル": "-A1*2"}, XC("B3"), "タイトル", "cell reference ('A1')", {}),
    (
        X,
        {"対象": "city-instagram", "画像": "ok.png", "Instagram用本文": LONG_INSTAGRAM},
        XC("O3"),
        "Instagram用本文",
        "does not fit instagram",
        {"account": "city-instagram"},
    ),
    (X, {"対象": "city-instagram"}, XC("H3"), "画像", "posts need an image", {"account": "city-instagram"}),
    (X, {"メモ帳": "x"}, XC("P1"), "メモ帳", "unknown column", {}),
]


def _merged(base: dict, changes: dict) -> dict:
    out = dict(base)
    for key, value in changes.items():
        if key.startswith("__"):
            continue
        if value is DROP:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def _files(kind: str, changes) -> dict[str, str | bytes]:
    if kind == Y:
        text = changes if isinstance(changes, str) else yaml_text([GOOD_YAML, _merged(BAD_YAML, changes)])
        return {"bad.yaml": text}
    headers = [h for h in TABLE_HEADERS if changes.get(h) is not DROP]
    headers += [k for k in changes if k not in TABLE_HEADERS and not k.startswith("__")]
    rows = table_rows([GOOD_ROW, _merged(BAD_ROW, changes)], headers)
    if kind == C:
        return {"bad.csv": csv_bytes(rows)}
    return {"bad.xlsx": rows}


@pytest.mark.parametrize(
    ("kind", "changes", "expected_place", "field", "fragment", "options"),
    CASES,
    ids=[f"{i:02d}-{c[0]}-{c[4][:30]}" for i, c in enumerate(CASES)],
)
def test_malformed_input_is_located(load, tmp_path, kind, changes, expected_place, field, fragment, options):
    files = _files(kind, changes)
    if kind == X:
        folder = tmp_path / "calendar"
        folder.mkdir()
        write_xlsx(folder / "bad.xlsx", files.pop("bad.xlsx"), formats=changes.get("__formats__"))
    result = load(files)

    matches = [
        p
        for p in result.problems
        if place(p) == expected_place and (field is None or field in (p.where.field or "")) and fragment in p.message
    ]
    assert matches, f"no problem at {expected_place} / {field} / {fragment!r}; got:\n" + "\n".join(
        f"  {p.severity} {p}" for p in result.problems
    )
    problem = matches[0]
    assert problem.severity == options.get("severity", "error")
    assert problem.where.account == options.get("account")
    if options.get("good_loads", True):
        assert "good-1" in result.by_id(), "the valid entry beside the broken one must still load"
        assert result.by_id()["good-1"].accounts == ["city-x"]


def test_the_table_is_large_enough():
    assert len(CASES) >= 60
    assert {c[0] for c in CASES} == {Y, C, X}
