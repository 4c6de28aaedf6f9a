"""The newsletter export's mail to the editors carries the workbook and the CSV, and a retried
export task does not mail the same export again."""

from __future__ import annotations

from koho.channels.newsletter_export import mail_editors

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def test_the_export_mail_attaches_the_files_once(config, ledger, smtp, tmp_path):
    xlsx, csv = tmp_path / "koho-newsletter-2026-10.xlsx", tmp_path / "koho-newsletter-2026-10.csv"
    xlsx.write_bytes(b"PK\x03\x04 workbook")
    csv.write_text("\ufeff見出し,本文\nお知らせ,ごみの日が変わります\n", encoding="utf-8")
    result = {"year": 2026, "month": 10, "items": 1, "xlsx": str(xlsx), "csv": str(csv), "html": str(xlsx) + ".html"}

    assert mail_editors(result, config, ledger) is True
    assert mail_editors(result, config, ledger) is True  # the task's retry

    [mail] = smtp.messages
    assert mail["To"] == "koho@city.example.jp" and "2026年10月" in str(mail["Subject"])
    files = {p.get_filename(): p for p in mail.iter_attachments()}
    assert files[xlsx.name].get_content_type() == XLSX and files[xlsx.name].get_content() == xlsx.read_bytes()
    assert "ごみの日が変わります" in files[csv.name].get_content()
    assert str(xlsx) in mail.get_body(("html",)).get_content()

    csv.write_text("\ufeff見出し,本文\nお知らせ,訂正版\n", encoding="utf-8")
    mail_editors(result, config, ledger)  # a new export of the month is a new mail
    assert len(smtp.messages) == 2
