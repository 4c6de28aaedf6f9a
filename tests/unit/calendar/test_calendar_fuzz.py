"""Fuzzed and hand-made malformed calendar files, read the way calendar_sync reads them.

For any content: no exception escapes, every problem is located in the file it is about, and
the valid file beside it is loaded. A malformed file is also judged within seconds and a bounded
amount of memory (checked in a child process under ``RLIMIT_AS``)."""

from __future__ import annotations

import io
import json
import resource
import subprocess
import sys
import tempfile
import textwrap
import zipfile
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from koho.calendar.sources import read_source
from koho.calendar.validate import validate_sources
from tests.unit.calendar.calendar_helpers import NOW, csv_bytes, table_rows
from tests.unit.calendar.hostile_files import GOOD, GOOD_ID, hand_made, xlsx_bytes

FUZZ = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
REPO = Path(__file__).resolve().parents[3]

#: YAML's own punctuation and the characters files pick up on their way: the fuzzer's alphabet.
YAML_BITS = ["!", "&a", "*a", "? ", ": ", "- ", "[", "]", "{", "}", "|", ">", "#", "'", '"', "%YAML 1.1\n", "---\n"]
HOSTILE_CHARS = st.sampled_from(["\x00", "\x07", "\x0b", "\x1b", "\ufeff", "\u202e", "\u200b", "\u3000", "\r", "\t"])
TEXT = st.text(
    st.one_of(st.characters(exclude_categories=["Cs"]), HOSTILE_CHARS), max_size=40
)  # files hold no surrogates
CELL = st.one_of(TEXT, st.integers(-(10**12), 10**12), st.floats(allow_nan=True), st.booleans(), st.none())


def judge(config, media, name: str, content: bytes) -> None:
    """Load ``content`` as ``name`` beside the good file and assert what every load must give."""
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "good.yaml").write_text(GOOD, encoding="utf-8")
        (Path(folder) / name).write_bytes(content)
        reads = [read_source(Path(folder) / "good.yaml"), read_source(Path(folder) / name)]
    result = validate_sources(reads, config, now=NOW, media_dir=media)
    assert GOOD_ID in result.by_id(), [str(p) for p in result.problems]
    for problem in result.problems:
        assert (problem.where.file or "").startswith(name), str(problem)
        assert problem.message


@st.composite
def mutated_yaml(draw) -> bytes:
    valid = GOOD.replace("good-1", "fuzz-1").replace("2027-02-01", "2027-03-01")  # apart from the good entry
    base = draw(st.sampled_from([valid, "entries:\n", ""]))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(base)))
        piece = draw(st.one_of(st.sampled_from(YAML_BITS), TEXT))
        cut = draw(st.integers(0, 3))
        base = base[:at] + piece + base[at + cut :]
    encoding = draw(st.sampled_from(["utf-8", "utf-16", "cp932"]))
    return base.encode(encoding, errors="replace")


@st.composite
def fuzzed_table(draw) -> list[list]:
    headers = draw(
        st.lists(
            st.sampled_from(["ID", "タイトル", "公開日時", "対象", "本文", "承認", "状態", "X用本文", ""]), max_size=9
        )
    )
    rows = draw(st.lists(st.lists(CELL, max_size=10), max_size=5))
    return [list(headers), *rows]


@cache
def _workbook() -> bytes:
    """One workbook for every example: openpyxl stamps the time, and examples must replay alike."""
    return xlsx_bytes(table_rows([{"ID": "w1", "タイトル": "t", "公開日時": "2027-02-03 10:00", "本文": "b"}]))


@st.composite
def corrupted_workbook(draw) -> bytes:
    book = bytearray(_workbook())
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(book) - 1))
        book[at] = draw(st.integers(0, 255))
    return bytes(book)


def _printable(value):
    if isinstance(value, str):
        from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

        return ILLEGAL_CHARACTERS_RE.sub("", value)
    return value


@FUZZ
@given(content=mutated_yaml())
def test_fuzzed_yaml_never_escapes_and_is_located(config, media, content):
    judge(config, media, "fuzz.yaml", content)


@FUZZ
@given(rows=fuzzed_table(), encoding=st.sampled_from(["utf-8-sig", "utf-16", "cp932"]))
def test_fuzzed_csv_never_escapes_and_is_located(config, media, rows, encoding):
    text = io.StringIO()
    import csv

    csv.writer(text).writerows([["" if v is None else str(v) for v in row] for row in rows])
    judge(config, media, "fuzz.csv", text.getvalue().encode(encoding, errors="replace"))


@FUZZ
@given(rows=fuzzed_table())
def test_fuzzed_workbook_cells_never_escape_and_are_located(config, media, rows):
    judge(config, media, "fuzz.xlsx", xlsx_bytes([[_printable(v) for v in row] for row in rows]))


@FUZZ
@given(content=corrupted_workbook())
def test_corrupted_workbook_bytes_never_escape_and_are_located(config, media, content):
    judge(config, media, "fuzz.xlsx", content)


@pytest.mark.parametrize("name", sorted(hand_made()))
def test_hand_made_hostile_files_never_escape_and_are_located(config, media, name):
    judge(config, media, name, hand_made()[name])


# ---------------------------------------------------------------------------------------------- time and memory

MEMORY_LIMIT = 1024 * 1024 * 1024  # address space for the child: Python, openpyxl and one bounded file
TIME_LIMIT = 60  # seconds; the reader needs a few, a loaded machine (CI) more


def _read_bounded(path: Path) -> list[str]:
    """Read ``path`` in a child process limited to MEMORY_LIMIT bytes and TIME_LIMIT seconds."""
    code = textwrap.dedent(
        f"""
        import json, sys
        from pathlib import Path
        from koho.calendar.sources import read_source
        read = read_source(Path({str(path)!r}))
        print(json.dumps([str(p) for p in read.problems]))
        """
    )

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=TIME_LIMIT,
        preexec_fn=limit,
        cwd=REPO,
        env={"PYTHONPATH": f"{REPO / 'plugins'}:{REPO}", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _big_yaml(entries: int) -> str:
    one = (
        '  - id: e{i}\n    title: t{i}\n    publish_at: "2027-02-01 10:00"\n    targets: [city-x]\n    text: 本文{i}\n'
    )
    return "entries:\n" + "".join(one.format(i=i) for i in range(entries))


@pytest.mark.parametrize(
    ("name", "make", "fragment"),
    [
        ("bomb.yaml", lambda: hand_made()["bomb.yaml"], "alias uses"),
        ("bomb.xlsx", lambda: hand_made()["bomb.xlsx"], "unpacks to"),
        ("huge.yaml", lambda: _big_yaml(60_000).encode(), "at most 3,000,000 are read"),
        ("many.yaml", lambda: _big_yaml(12_000).encode(), "at most 2000 are read"),
        ("long-cells.csv", lambda: csv_bytes(table_rows([{"ID": "l", "本文": "長" * 900_000}])), ""),
    ],
)
def test_a_malformed_file_is_judged_in_bounded_time_and_memory(tmp_path, name, make, fragment):
    path = tmp_path / name
    path.write_bytes(make())
    problems = _read_bounded(path)
    assert problems, "a file past a limit must be refused with a problem"
    assert any(fragment in p for p in problems), problems


def test_the_memory_limit_is_real(tmp_path):
    """The child's limit does stop a reader that inflates without bounds (so the tests above mean something)."""
    path = tmp_path / "inflate.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("big.bin", b"\0" * (64 << 20))
    code = (
        "import zipfile; data = [zipfile.ZipFile(%r).read('big.bin') for _ in range(40)]" % str(path)  # noqa: UP031
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        timeout=TIME_LIMIT,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT)),
    )
    assert done.returncode != 0 and b"MemoryError" in done.stderr
