"""Read calendar files (YAML, CSV, Excel) into raw entries that remember where each value was.

Each reader turns its format into the same shape: one :class:`RawEntry` per entry, holding the
field dictionary the schema validates and a way to point at any field's place (``demo.yaml:12``,
``calendar.csv:5`` or the Excel cell ``calendar.xlsx!カレンダー!D7``). Nothing is validated
against the registry here; readers only refuse what can never become an entry value (a cell
a spreadsheet would run as a formula, a spreadsheet error, an unreadable file).

:func:`read_source` is the one guarded read per file: whatever a file holds (broken syntax,
control characters, a corrupt or encrypted workbook, a compression bomb, far too many rows),
the result is problems located in that file and the other files are read as usual. Sizes are
checked before anything is parsed (:class:`koho.config.schema.InputLimits`).
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from koho.calendar import columns
from koho.calendar.formula import formula_problem
from koho.config.schema import InputLimits
from koho.config.yamlsource import YamlDocument, YamlLimits, load_yaml, too_large
from koho.errors import Problem, Where

Locator = Callable[[tuple], Where]

YAML_SUFFIXES = (".yaml", ".yml")
EXCEL_SUFFIXES = (".xlsx", ".xlsm")
CALENDAR_SUFFIXES = (*YAML_SUFFIXES, ".csv", *EXCEL_SUFFIXES, ".xls")
SHEET_NAME = "カレンダー"
#: columns staff keep for themselves; their content is never read
NOTE_COLUMNS = {"メモ", "備考", "memo", "note", "notes", "担当", "担当者", "コメント", "comment"}
HEADER_SEARCH_ROWS = 10
#: Compound-file (OLE2) signature: old .xls workbooks, and .xlsx workbooks saved with a password.
OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
#: The stream an encrypted (password-protected) OOXML workbook carries, as UTF-16 in the directory.
ENCRYPTION_STREAM = "EncryptionInfo".encode("utf-16-le")
ZIP_SIGNATURE = b"PK\x03\x04"


@dataclass
class RawEntry:
    """One entry as read, before validation: data, a locator for its fields, and reading problems."""

    data: dict[str, Any]
    locate: Locator
    problems: list[Problem] = field(default_factory=list)
    refused: set[str] = field(default_factory=set)  # fields whose cell was refused: not "missing" too

    def where(self, path: Iterable[str | int] = (), *, account: str | None = None) -> Where:
        place = self.locate(tuple(path))
        return replace(place, account=account) if account else place

    @property
    def label(self) -> str:
        """Where the entry starts, e.g. ``demo.yaml:12``: stored with the entry for later messages."""
        return str(replace(self.where(), field=None))


@dataclass
class SourceRead:
    file: str
    entries: list[RawEntry] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)  # about the file itself (syntax, header)
    sheet: str | None = None  # the worksheet read, for workbooks


def calendar_files(directory: Path) -> list[Path]:
    """The calendar files directly in ``directory``, in name order (templates/ and lock files skipped)."""
    if not directory.is_dir():
        return []
    return sorted(
        p
        for p in directory.iterdir()
        if p.is_file() and p.suffix.lower() in CALENDAR_SUFFIXES and not p.name.startswith((".", "~$"))
    )


def read_source(path: Path, *, display_name: str | None = None, limits: InputLimits | None = None) -> SourceRead:
    """Read one calendar file of any supported kind; never raises (see the module doc)."""
    name = display_name or path.name
    limits = limits or InputLimits()
    try:
        read = _read_kind(path, name, limits)
    except MemoryError:
        read = SourceRead(name, problems=[Problem(Where(file=name), "too large to read in memory; nothing was loaded")])
    except Exception as exc:
        read = SourceRead(
            name,
            problems=[Problem(Where(file=name), f"cannot be read ({type(exc).__name__}: {exc}); nothing was loaded")],
        )
    return _cap_problems(_cap_entries(read, limits.max_entries_per_file), limits.max_problems_per_file)


def _read_kind(path: Path, name: str, limits: InputLimits) -> SourceRead:
    suffix = path.suffix.lower()
    if suffix not in CALENDAR_SUFFIXES:
        return SourceRead(
            name, problems=[Problem(Where(file=name), "not a calendar file (expected .yaml, .csv or .xlsx)")]
        )
    if suffix == ".xls":
        return SourceRead(
            name, problems=[Problem(Where(file=name), "old Excel format (.xls) is not read; save it as .xlsx")]
        )
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return SourceRead(name, problems=[Problem(Where(file=name), "file not found")])
    if size > limits.max_file_bytes:
        return SourceRead(name, problems=[too_large(name, size, limits.max_file_bytes)])
    if suffix in YAML_SUFFIXES:
        return read_yaml(path, display_name=name, limits=limits)
    if suffix == ".csv":
        return read_csv(path, display_name=name, max_entries=limits.max_entries_per_file)
    return read_xlsx(path, display_name=name, limits=limits)


def _cap_entries(read: SourceRead, limit: int) -> SourceRead:
    """At most ``limit`` entries per file; the file-level error also keeps the rest from looking deleted."""
    if len(read.entries) > limit:
        first_left = read.entries[limit]
        read.problems.append(
            Problem(
                replace(first_left.where(), field=None),
                f"the file has more than {limit} entries; at most {limit} are read per file "
                "(policy.yaml limits.max_entries_per_file): this one and the rest are not loaded; split the file",
            )
        )
        del read.entries[limit:]
    return read


def _cap_problems(read: SourceRead, limit: int) -> SourceRead:
    """At most about ``limit`` problems listed per file, so one hostile file cannot flood the mail.

    Past the limit every entry keeps its first problem (an entry with an error must stay refused)
    and one warning says how many were left out."""
    total = len(read.problems) + sum(len(e.problems) for e in read.entries)
    if total <= limit:
        return read
    left = limit
    del read.problems[max(1, limit // 4) :]
    left -= len(read.problems)
    for entry in read.entries:
        keep = max(1, min(len(entry.problems), left)) if entry.problems else 0
        del entry.problems[keep:]
        left -= keep
    shown = len(read.problems) + sum(len(e.problems) for e in read.entries)
    read.problems.append(
        Problem(
            Where(file=read.file),
            f"{total - shown:,} more problems in this file are not listed (policy.yaml limits.max_problems_per_file)",
            severity="warning",
        )
    )
    return read


# ---------------------------------------------------------------------------------------------- YAML


def read_yaml(path: Path, *, display_name: str | None = None, limits: InputLimits | None = None) -> SourceRead:
    limits = limits or InputLimits()
    bounds = YamlLimits(limits.max_file_bytes, limits.max_yaml_nodes, limits.max_yaml_aliases)
    return yaml_entries(load_yaml(path, display_name=display_name, limits=bounds))


def _entry_of(doc: YamlDocument, problem: Problem) -> tuple[int | None, bool]:
    """The index of the entry a YAML problem is inside (None: the file), and whether the file
    must count as unreadable too (an ambiguous id could make an entry look deleted)."""
    path = doc.problem_paths.get(problem, ())
    if len(path) >= 3 and path[0] == "entries" and isinstance(path[1], int):
        return path[1], path[2] == "id"
    return None, True


def yaml_entries(doc: YamlDocument) -> SourceRead:
    out = SourceRead(doc.file)
    by_entry: dict[int, list[Problem]] = {}
    for problem in doc.problems:
        index, file_level = _entry_of(doc, problem)
        if index is not None:
            by_entry.setdefault(index, []).append(problem)
        if file_level:
            out.problems.append(problem)
    if doc.data is None:
        if not doc.problems:
            out.problems.append(
                Problem(Where(file=doc.file), "file is empty (expected 'entries:' with a list)", severity="warning")
            )
        return out
    if not isinstance(doc.data, dict) or "entries" not in doc.data:
        out.problems.append(Problem(doc.where(()), "expected a mapping with an 'entries:' list at the top"))
        return out
    for key in doc.data:
        if key != "entries":
            out.problems.append(Problem(doc.where((key,)), "unknown top-level key; only 'entries' is allowed"))
    if any(doc.problem_paths.get(p) == ("entries",) for p in doc.problems):
        # two 'entries:' lists: which one staff meant is unknown, so neither is planned
        return out
    items = doc.data["entries"] or []
    if not isinstance(items, list):
        out.problems.append(Problem(doc.where(("entries",)), "'entries' must be a list of entries (each '- id: ...')"))
        return out
    for index, item in enumerate(items):
        locate = _yaml_locator(doc, index)
        if not isinstance(item, dict):
            out.problems.append(Problem(locate(()), "an entry must be a mapping of fields (id:, title:, ...)"))
            continue
        raw = RawEntry(dict(item), locate, list(by_entry.get(index, ())))
        for path, value in _strings(item, ()):
            reason = formula_problem(value)
            if reason:
                raw.problems.append(Problem(raw.where(path), reason))
        out.entries.append(raw)
    return out


def _yaml_locator(doc: YamlDocument, index: int) -> Locator:
    return lambda path: doc.where(("entries", index, *path))


def _strings(value: Any, path: tuple) -> Iterator[tuple[tuple, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, (*path, i))


# ---------------------------------------------------------------------------------------------- tables


def decode_csv(raw: bytes) -> tuple[str, str]:
    """Text and encoding of a CSV as Excel and other tools write it: UTF-8 (with or without BOM),
    UTF-16 with BOM ("Unicode text"), or Shift_JIS / CP932 (Excel's "CSV" on Japanese Windows)."""
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw.decode("utf-8-sig"), "utf-8-sig"
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16"), "utf-16"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    return raw.decode("cp932"), "cp932"


def read_csv(path: Path, *, display_name: str | None = None, max_entries: int | None = None) -> SourceRead:
    name = display_name or path.name
    try:
        text, _ = decode_csv(path.read_bytes())
    except FileNotFoundError:
        return SourceRead(name, problems=[Problem(Where(file=name), "file not found")])
    except UnicodeDecodeError:
        return SourceRead(
            name, problems=[Problem(Where(file=name), "cannot read the text: save the CSV as UTF-8 or Shift_JIS")]
        )
    return csv_entries(text, name, max_entries=max_entries)


def csv_entries(text: str, name: str, *, max_entries: int | None = None) -> SourceRead:
    first_line = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in first_line and "," not in first_line else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)

    def rows() -> Iterator[tuple[int, list[Any]]]:
        start = 1
        try:
            for record in reader:
                yield start, record
                start = reader.line_num + 1
        except csv.Error as exc:
            raise _TableError(Problem(Where(file=name, line=start), f"CSV syntax error: {exc}")) from None

    return _table_entries(
        name,
        rows(),
        cell=lambda row, col, header: Where(file=name, line=row, field=header),
        whole_row=lambda row: Where(file=name, line=row),
        max_entries=max_entries,
    )


def read_xlsx(path: Path, *, display_name: str | None = None, limits: InputLimits | None = None) -> SourceRead:
    """Read the visible sheet named カレンダー (or else the first visible sheet), saying which.

    Formulas are read as their text and refused, never computed: ``data_only=False`` keeps
    openpyxl from using cached results. The workbook is streamed (``read_only``) after its
    uncompressed size was checked, so a compression bomb is refused before it is inflated.
    """
    import openpyxl

    name = display_name or path.name
    limits = limits or InputLimits()
    refused = _workbook_problem(path, name, limits)
    if refused:
        return SourceRead(name, problems=[refused])
    try:
        book = openpyxl.load_workbook(path, data_only=False, read_only=True)
    except FileNotFoundError:
        return SourceRead(name, problems=[Problem(Where(file=name), "file not found")])
    except Exception as exc:
        return SourceRead(name, problems=[Problem(Where(file=name), f"cannot open as an Excel workbook ({exc})")])
    try:
        sheet, notes = _pick_sheet(book, name)
        if sheet is None:
            return SourceRead(name, problems=notes)
        prefix = f"{name}!{sheet.title}!"
        out = SourceRead(name, sheet=sheet.title)

        def rows() -> Iterator[tuple[int, list[Any]]]:
            for number, cells in enumerate(sheet.iter_rows(max_col=limits.max_sheet_columns), start=1):
                if number > limits.max_sheet_rows:
                    raise _TableError(
                        Problem(
                            Where(file=f"{prefix}{number}:{number}"),
                            f"the sheet has more than {limits.max_sheet_rows:,} rows; rows from here on are not "
                            "read (policy.yaml limits.max_sheet_rows)",
                        )
                    )
                yield number, [_excel_value(c) for c in cells]

        table = _table_entries(
            name,
            rows(),
            cell=lambda row, col, header: Where(file=f"{prefix}{_letter(col)}{row}", field=header),
            whole_row=lambda row: Where(file=f"{prefix}{row}:{row}"),
            max_entries=limits.max_entries_per_file,
        )
        out.entries, out.problems = table.entries, [*notes, *table.problems]
        return out
    finally:
        book.close()


def _workbook_problem(path: Path, name: str, limits: InputLimits) -> Problem | None:
    """What keeps the file from being read as a workbook, judged from its bytes before parsing."""
    with path.open("rb") as handle:
        head = handle.read(8)
        if head.startswith(OLE_SIGNATURE):
            handle.seek(0)
            directory = handle.read(min(limits.max_file_bytes, 4_000_000))
            if ENCRYPTION_STREAM in directory:
                return Problem(
                    Where(file=name),
                    "the workbook is password-protected (encrypted), so it cannot be read; save a copy "
                    "without a password (File > Info > Protect Workbook)",
                )
            return Problem(
                Where(file=name),
                "this is an old Excel 97-2003 workbook (.xls format) with an .xlsx name; save it as "
                "'Excel Workbook (*.xlsx)'",
            )
    if not head.startswith(ZIP_SIGNATURE):
        return Problem(
            Where(file=name), "cannot open as an Excel workbook (an .xlsx file is a zip archive; this one is not)"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        return Problem(Where(file=name), f"cannot open as an Excel workbook ({exc})")
    inflated = sum(m.file_size for m in members)
    if inflated > limits.max_workbook_bytes:
        return Problem(
            Where(file=name),
            f"the workbook unpacks to {inflated:,} bytes; at most {limits.max_workbook_bytes:,} are read "
            "(policy.yaml limits.max_workbook_bytes): remove pictures or unused sheets, or split it",
        )
    return None


def _pick_sheet(book: Any, name: str) -> tuple[Any, list[Problem]]:
    """The worksheet to read and notes on the choice: hidden sheets are never read."""
    visible = [ws for ws in book.worksheets if getattr(ws, "sheet_state", "visible") == "visible"]
    hidden = [ws.title for ws in book.worksheets if ws not in visible]
    named = next((ws for ws in visible if ws.title == SHEET_NAME), None)
    if named is not None:
        return named, []
    if not visible:
        return None, [Problem(Where(file=name), "the workbook has no visible worksheet; nothing was read")]
    chosen = visible[0]
    if len(book.worksheets) == 1:
        return chosen, []  # the only sheet: nothing to choose between
    why = (
        f"the sheet '{SHEET_NAME}' is hidden and was not read"
        if SHEET_NAME in hidden
        else f"no visible sheet is named '{SHEET_NAME}'"
    )
    return chosen, [
        Problem(
            Where(file=f"{name}!{chosen.title}"),
            f"{why}; the first visible sheet '{chosen.title}' was read instead",
            severity="warning",
        )
    ]


def _excel_value(cell: Any) -> Any:
    value = cell.value
    text = getattr(value, "text", None)  # ArrayFormula / DataTableFormula objects
    if isinstance(text, str):
        return text if text.startswith("=") else "=" + text
    if isinstance(value, datetime) and value.time() == datetime.min.time() and "h" not in cell.number_format.lower():
        return value.date()  # a date-only cell: let the schema say a time of day is missing
    return value


def _letter(col: int) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(col + 1)


class _TableError(Exception):
    def __init__(self, problem: Problem):
        self.problem = problem


def _table_entries(
    name: str,
    rows: Iterable[tuple[int, list[Any]]],
    *,
    cell: Callable[[int, int, str | None], Where],
    whole_row: Callable[[int], Where],
    max_entries: int | None = None,
) -> SourceRead:
    """Shared by CSV and Excel: find the header row, map columns, turn each data row into a RawEntry."""
    out = SourceRead(name)
    iterator = iter(rows)
    try:
        header_row, header = _find_header(iterator, out, name)
        if header is None:
            return out
        mapping, closed = _map_columns(header_row, header, out, cell)
        present = {target for target in mapping.values() if isinstance(target, str)}
        missing = [columns.JAPANESE_HEADERS[f] for f in columns.REQUIRED_COLUMNS if f not in present]
        if missing:
            out.problems.append(
                Problem(
                    whole_row(header_row), f"header row lacks the column(s) {', '.join(missing)}; no row was loaded"
                )
            )
            return out
        for row, values in iterator:
            raw = _row_entry(row, values, header, mapping, closed, cell, whole_row)
            if raw is not None:
                out.entries.append(raw)
                if max_entries is not None and len(out.entries) > max_entries:
                    break  # one past the limit, so that the cap can say where the rest starts
    except _TableError as exc:
        out.problems.append(exc.problem)
    return out


def _find_header(rows: Iterator[tuple[int, list[Any]]], out: SourceRead, name: str):
    """The first row (among the first few non-blank ones) naming at least two known columns.

    Rows above it are allowed, so a sheet may carry a title or a note over the table."""
    seen = 0
    for row, values in rows:
        if all(columns.is_blank(v) for v in values):
            continue
        seen += 1
        known = sum(1 for v in values if not columns.is_blank(v) and columns.column_for(columns.as_text(v)))
        if known >= 2:
            return row, [None if columns.is_blank(v) else columns.as_text(v).strip() for v in values]
        if seen >= HEADER_SEARCH_ROWS:
            break
    out.problems.append(
        Problem(
            Where(file=name),
            "no header row found; expected columns such as ID, タイトル, 公開日時, 対象, 本文 (see the template)",
        )
    )
    return None, None


def _map_columns(header_row, header, out: SourceRead, cell) -> tuple[dict[int, Any], dict[int, str]]:
    """Column index -> field (or ("overrides", key)); unknown or repeated columns -> why they are refused."""
    mapping: dict[int, Any] = {}
    refused: dict[int, str] = {}
    first_of: dict[Any, int] = {}
    for col, title in enumerate(header):
        if title is None:
            refused[col] = "this column has no header, so its values cannot be read; add a header or clear it"
            continue
        if columns.normalise(title) in NOTE_COLUMNS:
            refused[col] = ""  # staff notes: ignored without a word
            continue
        target = columns.column_for(title)
        where = cell(header_row, col, title)
        if target is None:
            known = ", ".join(columns.JAPANESE_HEADERS.values())
            out.problems.append(
                Problem(
                    where,
                    f"unknown column '{title}'; expected one of {known}, "
                    "'<platform or account>用本文', or メモ/備考 for notes",
                )
            )
            refused[col] = f"value in the unknown column '{title}' (rename the column or move the value)"
        elif target in first_of:
            other = header[first_of[target]]
            out.problems.append(Problem(where, f"column '{title}' repeats column '{other}'; keep only one"))
            refused[col] = f"value in the repeated column '{title}'"
        else:
            first_of[target] = col
            mapping[col] = target
    return mapping, refused


def _row_entry(row, values, header, mapping, closed, cell, whole_row) -> RawEntry | None:
    """One data row -> RawEntry; ``closed`` maps columns whose values are refused to the reason."""
    if all(columns.is_blank(v) for v in values):
        return None
    first = columns.as_text(values[0]).strip() if values and not columns.is_blank(values[0]) else ""
    if first.startswith("※") or (first.startswith("#") and not columns.EXCEL_ERRORS.match(first)):
        return None  # a comment row, e.g. the template's example
    data: dict[str, Any] = {}
    places: dict[tuple, Where] = {}
    problems: list[Problem] = []
    refused: set[str] = set()
    for col, target in mapping.items():
        path = tuple(target) if isinstance(target, tuple) else (target,)
        places[path] = cell(row, col, header[col])
    for col, value in enumerate(values):
        if columns.is_blank(value):
            continue
        title = header[col] if col < len(header) else None
        where = cell(row, col, title)
        if col >= len(header) or col in closed:
            reason = closed.get(col, "value outside the table (no header above it)")
            if reason:
                problems.append(Problem(where, reason))
            continue
        target = mapping[col]
        field_name = target[0] if isinstance(target, tuple) else target
        reason = _cell_problem(value)
        if reason is None:
            try:
                converted = columns.convert(field_name, value)
            except ValueError as exc:
                reason = str(exc)
        if reason is not None:
            problems.append(Problem(where, reason))
            refused.add(field_name)
            continue
        if isinstance(target, tuple):
            data.setdefault("overrides", {})[target[1]] = converted
        elif converted != []:
            data[target] = converted

    def locate(path: tuple) -> Where:
        for size in (2, 1):
            if len(path) >= size and tuple(path[:size]) in places:
                return places[tuple(path[:size])]
        return whole_row(row)

    return RawEntry(data, locate, problems, refused)


def _cell_problem(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    if columns.EXCEL_ERRORS.match(value.strip()):
        return f"the cell holds the spreadsheet error '{value.strip()}'"
    return formula_problem(value)


# ---------------------------------------------------------------------------------------------- templates

TEMPLATE_COLUMNS = [*columns.JAPANESE_HEADERS.values(), "X用本文", "Instagram用本文", "LINE用本文", "メモ"]
TEMPLATE_HELP = [
    ("ID", "必須", "gomi-2027-01", "英数字と - _ . のみ。すべてのカレンダーで重複しないこと"),
    ("タイトル", "必須", "1月のごみ収集日程", "管理用の件名。ホームページ・広報紙では見出しになる"),
    ("公開日時", "必須", "2027-01-05 09:00", "日本時間。日付と時刻の両方を書く"),
    (
        "対象",
        "SNSなら必須",
        "city-x、city-line",
        "アカウントID、または all / general / special / topic:tourism / platform:instagram",
    ),
    ("チャネル", "任意", "SNS、ホームページ、広報紙", "空欄ならSNSのみ"),
    ("本文", "必須", "1月のごみ収集日程をお知らせします。", "全アカウント共通の本文。長すぎる場合は自動で調整"),
    ("リンク", "任意", "https://www.city.example.jp/gomi/", "https:// で始まるURL"),
    ("画像", "Instagramなら必須", "gomi-calendar.png", "include/media 内のファイル名、または https:// のURL"),
    ("ハッシュタグ", "任意", "こほ市、ごみ分別", "# は付けなくてよい"),
    ("分類", "任意", "くらし", "広報紙の掲載区分"),
    ("承認", "任意", "要", "要/不要、はい/いいえ、○/×"),
    ("祝日可", "任意", "不要", "祝日に投稿してよい場合は「要」"),
    ("状態", "任意", "予定", "予定 または 中止"),
    ("X用本文 など", "任意", "", "「<プラットフォーム名またはアカウントID>用本文」の列で個別の本文を指定"),
    ("メモ", "任意", "", "職員用のメモ。読み込まれない"),
]
_FIXED_TIME = datetime(2027, 1, 1)


def write_template(path: Path) -> Path:
    """Write the Excel template staff copy to start a calendar (regenerate it with this function).

    Sheet カレンダー holds only the header row, so a filled copy is read as-is; the 記入方法
    sheet explains each column with an example. Timestamps are fixed so regenerating does not
    churn the committed file more than necessary.
    """
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.worksheet.datavalidation import DataValidation

    book = Workbook()
    sheet = book.active
    sheet.title = SHEET_NAME
    sheet.append(TEMPLATE_COLUMNS)
    bold, fill = Font(bold=True), PatternFill("solid", fgColor="DDEBF7")
    widths = {"タイトル": 24, "公開日時": 18, "対象": 22, "本文": 50, "リンク": 30, "画像": 20}
    for col, title in enumerate(TEMPLATE_COLUMNS):
        c = sheet.cell(row=1, column=col + 1)
        c.font, c.fill = bold, fill
        sheet.column_dimensions[_letter(col)].width = widths.get(title, 40 if "本文" in title else 12)
    sheet.freeze_panes = "A2"
    when = _letter(TEMPLATE_COLUMNS.index("公開日時"))
    for row in range(2, 201):
        sheet[f"{when}{row}"].number_format = "yyyy-mm-dd hh:mm"
        for title in ("本文", "X用本文", "Instagram用本文", "LINE用本文"):
            sheet[f"{_letter(TEMPLATE_COLUMNS.index(title))}{row}"].alignment = Alignment(wrap_text=True)
    yes_no = DataValidation(type="list", formula1='"要,不要"', allow_blank=True)
    status = DataValidation(type="list", formula1='"予定,中止"', allow_blank=True)
    for validation, title in ((yes_no, "承認"), (yes_no, "祝日可"), (status, "状態")):
        letter = _letter(TEMPLATE_COLUMNS.index(title))
        validation.add(f"{letter}2:{letter}200")
    sheet.add_data_validation(yes_no)
    sheet.add_data_validation(status)

    help_sheet = book.create_sheet("記入方法")
    help_sheet.append(["列", "必須/任意", "記入例", "説明"])
    for c in help_sheet[1]:
        c.font, c.fill = bold, fill
    for line in TEMPLATE_HELP:
        help_sheet.append(list(line))
    for letter, width in zip("ABCD", (14, 16, 34, 70), strict=True):
        help_sheet.column_dimensions[letter].width = width
    book.properties.creator = "Koho"
    book.properties.created = book.properties.modified = _FIXED_TIME
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)
    return path


def write_csv_template(path: Path) -> Path:
    """Write the CSV template: UTF-8 with BOM so Excel on Japanese Windows opens it correctly."""
    example = {
        "ID": "※記入例（この行は読み込まれません）",
        "タイトル": "1月のごみ収集日程",
        "公開日時": "2027-01-05 09:00",
        "対象": "city-x、city-line",
        "チャネル": "SNS、ホームページ",
        "本文": "1月のごみ収集日程をお知らせします。",
        "リンク": "https://www.city.example.jp/gomi/",
        "画像": "",
        "ハッシュタグ": "こほ市",
        "分類": "くらし",
        "承認": "不要",
        "祝日可": "不要",
        "状態": "予定",
    }
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(TEMPLATE_COLUMNS)
    writer.writerow([example.get(title, "") for title in TEMPLATE_COLUMNS])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue().encode("utf-8-sig"))
    return path
