"""calendar_sync over hostile files, on SQLite and Postgres: the valid file beside them is stored
exactly, texts that passed validation store on both databases (Postgres refuses NUL in text), and an
entry made ambiguous by a duplicate key keeps what the ledger had."""

from __future__ import annotations

from sqlalchemy import select

from koho.calendar.sync import sync_calendar
from koho.ledger.models import CalendarEntry, Delivery
from tests.unit.calendar.calendar_helpers import NOW, write_media
from tests.unit.calendar.hostile_files import GOOD_ID, hand_made, write_folder

APPROVED_ENTRY = (
    '  - id: needs-ok\n    title: 承認が要る投稿\n    publish_at: "2027-02-05 10:00"\n    targets: [city-x]\n'
    "    text: 承認が必要なお知らせです。\n    approval: true\n"
)


def stored(ledger) -> dict[str, CalendarEntry]:
    with ledger.session(readonly=True) as session:
        return {e.id: e for e in session.scalars(select(CalendarEntry))}


def statuses(ledger, entry_id: str) -> set[str]:
    with ledger.session(readonly=True) as session:
        return set(session.scalars(select(Delivery.status).where(Delivery.entry_id == entry_id)))


def synced_once(ledger, config, tmp_path):
    """The entry needing approval, synced once: (calendar folder, media folder)."""
    folder = tmp_path / "calendar"
    folder.mkdir()
    media = write_media(tmp_path)
    (folder / "cal.yaml").write_text("entries:\n" + APPROVED_ENTRY, encoding="utf-8")
    sync_calendar(ledger, config, folder, now=NOW, media_dir=media)
    return folder, media


def test_the_hostile_corpus_syncs_the_valid_file_and_reports_each_bad_one(ledger, config, tmp_path):
    folder = write_folder(tmp_path / "calendar", hand_made())
    report = sync_calendar(ledger, config, folder, now=NOW, media_dir=write_media(tmp_path))

    entries = stored(ledger)
    assert set(entries) == {GOOD_ID}
    assert entries[GOOD_ID].payload["text"] == "👨‍👩‍👧 家族で𠮷野家へ。ｶﾞｷﾞ ✔︎ -ご注意ください +81-3-1234-5678"
    assert statuses(ledger, GOOD_ID) == {"planned"}
    for name in hand_made():
        assert any(error.startswith(name) for error in report.errors), name


def test_a_nul_in_a_text_never_reaches_the_database(ledger, config, tmp_path):
    folder = tmp_path / "calendar"
    write_folder(folder, {})
    (folder / "nul.yaml").write_text(
        'entries:\n  - id: nul-1\n    title: t\n    publish_at: "2027-02-05 10:00"\n    targets: [city-x]\n'
        '    text: "ヌル\\0文字"\n',
        encoding="utf-8",
    )
    report = sync_calendar(ledger, config, folder, now=NOW, media_dir=write_media(tmp_path))
    assert set(stored(ledger)) == {GOOD_ID}
    assert any("nul.yaml:6" in e and "U+0000" in e for e in report.errors), report.errors


def test_a_duplicate_approval_key_keeps_the_approval_the_ledger_had(ledger, config, tmp_path):
    folder, media = synced_once(ledger, config, tmp_path)
    assert statuses(ledger, "needs-ok") == {"awaiting_approval"}

    (folder / "cal.yaml").write_text("entries:\n" + APPROVED_ENTRY + "    approval: false\n", encoding="utf-8")
    report = sync_calendar(ledger, config, folder, now=NOW, media_dir=media)

    assert statuses(ledger, "needs-ok") == {"awaiting_approval"}  # never planned without approval
    assert stored(ledger)["needs-ok"].approval_required is True
    [error] = report.errors
    assert "cal.yaml:8" in error and "duplicate key" in error and "keeps what the ledger had" in error


def test_a_file_that_became_unreadable_cancels_nothing(ledger, config, tmp_path):
    folder, media = synced_once(ledger, config, tmp_path)

    (folder / "cal.yaml").write_text("entries:\n" + APPROVED_ENTRY + "    text: !evil 別の本文\n", encoding="utf-8")
    report = sync_calendar(ledger, config, folder, now=NOW, media_dir=media)
    assert statuses(ledger, "needs-ok") == {"awaiting_approval"} and report.removed == []
    assert any("tag '!evil'" in e for e in report.errors)


def test_a_hidden_sheet_is_never_planned_and_the_report_names_the_sheet_read(ledger, config, tmp_path):
    from openpyxl import Workbook

    from tests.unit.calendar.calendar_helpers import table_rows

    row = {"タイトル": "t", "公開日時": "2027-02-03 10:00", "対象": "city-x", "本文": "本文です"}
    book = Workbook()
    draft = book.active
    draft.title = "下書き"
    for values in table_rows([{**row, "ID": "secret"}]):
        draft.append(values)
    draft.sheet_state = "hidden"
    public = book.create_sheet("公開用")
    for values in table_rows([{**row, "ID": "public"}]):
        public.append(values)
    folder = write_folder(tmp_path / "calendar", {})
    book.save(folder / "cal.xlsx")

    report = sync_calendar(ledger, config, folder, now=NOW, media_dir=write_media(tmp_path))
    assert set(stored(ledger)) == {GOOD_ID, "public"}
    assert report.sheets == {"cal.xlsx": "公開用"}
    assert any("'公開用' was read" in w for w in report.warnings)
