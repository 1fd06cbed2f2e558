"""Tables on a PDF page as text that keeps rows and column names (issue 25).

pypdf flattens a table into a run of numbers ("BERTLARGE 86.7/85.9 72.1 92.7 ..."), so nothing
downstream knows which number is which model's score on which task. Here a table becomes its
caption plus one line per row, each cell named by its column header:

    Table 1: GLUE Test results, scored by the evaluation server ...
    System: BERT LARGE | MNLI-(m/mm): 86.7/85.9 | QQP: 72.1 | QNLI: 92.7 | ...

Method (chosen by measurement, docs/documents.md "Tables"): a layout rule over PDFium's character
boxes, run only on pages whose pypdf text has a "Table N" caption line. pdfplumber's table finder
was tried first: on the 82 caption pages of the 15 arXiv papers it took 8.2 s (pypdf reads all 304
pages in 9.9 s), glued words ("Pre-OpenAISOTA"), merged columns and spanned whole pages with
prose; PDFium gives the character boxes of those pages in 0.66 s. The rule:

1. words from character boxes; lines from words whose vertical middles fall in the same band
   (subscripts such as BERT_LARGE join their line);
2. the caption's column (left half, right half or full width, from the caption line's extent);
3. the table body: lines above the caption (or below its paragraph, whichever holds more lines of
   several cells) up to the first line that reads as prose, a big vertical gap or another caption;
4. columns: the x-intervals that the cells of the data lines (lines with numbers) cover, merged;
   every word goes to the column it overlaps; lines before the first data line are the header;
   a line with only a first cell is a group label ("LLaMA") prefixed to the rows below it.

Everything here runs inside the PDF sandbox child (webapp/rag/pdf_text._extract) and returns plain
data. A table the rule cannot read well yields wrong names, never a failed document.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

CAPTION = re.compile(r"^\s*(?:Table|TABLE)\s+(?:\d+|[IVX]+)\s*[:.]", re.MULTILINE)
_DIGIT = re.compile(r"\d")
_VALUE = re.compile(r"^[-+±–—]?[\d.,/%×x*†‡]*\d[\d.,/%×x*†‡kKMBG]*$|^[-–—]$")
MAX_TABLES_PER_PAGE = 8
MAX_ROWS = 200
MAX_CELL_CHARS = 80  # a row line's cells are short; a longer "cell" is prose (see is_row)


def _value(text: str) -> bool:
    """A cell value on its own: a number ("86.7/85.9", "+0.30%", "340M") or a dash for none."""
    return bool(_VALUE.match(text))


def has_caption(page_text: str) -> bool:
    """Whether a page may hold a table: a line starting "Table 3:" / "Table 3." in its pypdf text."""
    return bool(CAPTION.search(page_text))


@dataclass
class _Word:
    text: str
    x0: float
    top: float
    x1: float
    bottom: float


@dataclass
class _Line:
    top: float
    bottom: float
    words: list[_Word] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)

    def cells(self, gap: float) -> list[list[_Word]]:
        """Runs of words separated by more than ``gap`` points; two numbers side by side are two
        cells whatever the gap (narrow columns: "86.2 92.2 87.4 93.2" under "EM F1 EM F1")."""
        runs: list[list[_Word]] = []
        for w in self.words:
            if runs and w.x0 - runs[-1][-1].x1 <= gap and not (_value(w.text) and _value(runs[-1][-1].text)):
                runs[-1].append(w)
            else:
                runs.append([w])
        return runs


def _words(textpage: Any, height: float) -> list[_Word]:
    """Words from PDFium's characters: a new word at a space, a gap, or a jump of baseline."""
    text = textpage.get_text_range()
    words: list[_Word] = []
    current: _Word | None = None
    for i in range(min(len(text), textpage.count_chars())):
        ch = text[i]
        if ch.isspace():
            current = None
            continue
        left, bottom, right, top = textpage.get_charbox(i, loose=True)
        if right <= left or top <= bottom:
            continue
        top, bottom = height - top, height - bottom  # top-down like a reader
        if current is not None:
            size = current.bottom - current.top
            same_line = abs((top + bottom) / 2 - (current.top + current.bottom) / 2) < 0.25 * size
            if not same_line or left - current.x1 > 0.15 * size or left < current.x0:
                current = None
        if current is None:
            current = _Word(ch, left, top, right, bottom)
            words.append(current)
        else:
            current.text += ch
            current.x1 = max(current.x1, right)
            current.top, current.bottom = min(current.top, top), max(current.bottom, bottom)
    return words


def _lines(words: list[_Word]) -> list[_Line]:
    lines: list[_Line] = []
    for w in sorted(words, key=lambda w: (w.top, w.x0)):
        middle = (w.top + w.bottom) / 2
        for line in reversed(lines[-4:]):
            if line.top <= middle <= line.bottom:
                line.words.append(w)
                break
        else:
            lines.append(_Line(w.top, w.bottom, [w]))
    for line in lines:
        line.words.sort(key=lambda w: w.x0)
    return lines


def _numeric(line: _Line) -> bool:
    return sum(_value(w.text) for w in line.words) >= max(1, len(line.words) // 3)


def _prose(line: _Line, gap: float, width: float) -> bool:
    """A line of running text: words across most of the column with no wide gap (justified text
    spaces words up to about an em; table columns sit further apart), not mostly numbers."""
    ws = line.words
    widest = max((b.x0 - a.x1 for a, b in zip(ws, ws[1:])), default=0.0)
    if widest < 2.4 * gap and (ws[-1].x1 - ws[0].x0) > 0.6 * width and not _numeric(line):
        return True
    # Two columns of prose side by side (a full-width table's caption sits between them): long
    # runs of words with no number among them. Table labels are shorter.
    return not any(_value(w.text) for w in ws) and any(len(run) >= 7 for run in line.cells(gap))


def _paragraph(lines: list[_Line], at: int, gap: float, pitch: float) -> int:
    """The end (exclusive) of the caption paragraph starting at line ``at``: the lines right below
    it that read as running text (no wide gap, few numbers) as wide as its first line; a shorter
    one is its last line."""
    first = lines[at].words
    span = first[-1].x1 - first[0].x0
    end = at + 1
    while end < len(lines) and lines[end].top - lines[end - 1].top < pitch:
        line = lines[end]
        ws = line.words
        widest = max((b.x0 - a.x1 for a, b in zip(ws, ws[1:])), default=0.0)
        if has_caption(line.text) or _numeric(line) or widest >= 2.4 * gap:
            break
        end += 1
        if ws[-1].x1 - ws[0].x0 < 0.8 * span:
            break
    return end


def _body(
    lines: list[_Line], start: int, step: int, gap: float, width: float, pitch: float, captions: set[int]
) -> list[_Line]:
    """Lines from ``start`` in direction ``step`` until prose, a caption's paragraph or a gap of
    over 3 pitches."""
    out: list[_Line] = []
    i = start
    while 0 <= i < len(lines) and len(out) < MAX_ROWS:
        line = lines[i]
        if i in captions or _prose(line, gap, width):
            break
        if out and abs(line.top - out[-1].top) > 3 * pitch:
            break
        out.append(line)
        i += step
    return out if step > 0 else out[::-1]


def _columns(body: list[_Line], gap: float) -> list[tuple[float, float]]:
    """Merged x-intervals of the cells of the data lines (those with numbers): one per column."""
    spans = sorted(
        (cell[0].x0, cell[-1].x1)
        for line in body
        if _numeric(line) and len(line.cells(gap)) > 1
        for cell in line.cells(gap)
    )
    merged: list[list[float]] = []
    for x0, x1 in spans:
        if merged and x0 <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], x1)
        else:
            merged.append([x0, x1])
    return [(a, b) for a, b in merged]


def _column_of(word: _Word, columns: list[tuple[float, float]]) -> list[int]:
    """The columns whose middle the word spans (a header over several), else the one it overlaps
    most, else the nearest."""
    spanned = [i for i, (a, b) in enumerate(columns) if word.x0 <= (a + b) / 2 <= word.x1]
    if spanned:
        return spanned
    overlap = [min(word.x1, b) - max(word.x0, a) for a, b in columns]
    if max(overlap) > 0:
        return [overlap.index(max(overlap))]
    middle = (word.x0 + word.x1) / 2
    return [min(range(len(columns)), key=lambda i: min(abs(middle - columns[i][0]), abs(middle - columns[i][1])))]


def _grid(line: _Line, columns: list[tuple[float, float]], spread: bool) -> list[str]:
    """The line's text per column; a header word over several columns names each (``spread``)."""
    cells: list[list[str]] = [[] for _ in columns]
    for w in line.words:
        targets = _column_of(w, columns)
        for i in targets if spread else targets[:1]:
            cells[i].append(w.text)
    return [" ".join(c) for c in cells]


def _join(texts: Any) -> str:
    """Lines of a caption as one line; a word broken at a line end (PDFium marks it U+FFFE) mended."""
    out = ""
    for text in texts:
        if out.endswith(("\ufffe", "\u00ad")):
            out = out[:-1] + text
        else:
            out = f"{out} {text}" if out else text
    return out


def _table(lines: list[_Line], at: int, left: float, right: float) -> dict[str, Any] | None:
    heights = sorted(line.bottom - line.top for line in lines) or [10.0]
    size = heights[len(heights) // 2]
    gap, width = 0.5 * size, right - left
    pitch = 1.6 * size
    # Every caption's paragraph bounds the tables around it (two tables stacked in one column).
    captions: set[int] = set()
    for i, line in enumerate(lines):
        if has_caption(line.text):
            captions.update(range(i, _paragraph(lines, i, gap, pitch)))
    end = _paragraph(lines, at, gap, pitch)
    caption = _join(line.text for line in lines[at:end])
    above = _body(lines, at - 1, -1, gap, width, pitch, captions)
    below = _body(lines, end, 1, gap, width, pitch, captions)
    score_above = sum(_numeric(ln) and len(ln.cells(gap)) > 1 for ln in above)
    score_below = sum(_numeric(ln) and len(ln.cells(gap)) > 1 for ln in below)
    body = above if score_above >= score_below else below
    columns = _columns(body, gap)
    if len(columns) < 2 or max(score_above, score_below) < 2:
        return None
    first_data = next(i for i, line in enumerate(body) if _numeric(line) and len(line.cells(gap)) > 1)
    header = [""] * len(columns)
    group = ""
    for line in body[:first_data]:
        if any(header) and len(line.cells(gap)) == 1:
            group = line.text  # a label between the header and the first row: names the rows below
            continue
        header = [f"{h} {c}".strip() for h, c in zip(header, _grid(line, columns, spread=True))]
    rows: list[list[str]] = []
    for line in body[first_data:]:
        cells = _grid(line, columns, spread=False)
        label = len(line.cells(gap)) == 1 and not _numeric(line)
        if cells[0] and (label or not any(cells[1:])):
            group = line.text  # "LLaMA", "Ours", "Ensembles on test": names the rows below
            continue
        if group and cells[0]:
            cells[0] = f"{group} {cells[0]}"
        rows.append(cells)
    words = [w for line in body for w in line.words]
    bbox = (min(w.x0 for w in words), min(w.top for w in words), max(w.x1 for w in words), max(w.bottom for w in words))
    return {
        "caption": caption,
        "header": header,
        "rows": rows,
        "bbox": [round(v, 1) for v in bbox],
        # Letters and digits of the table's words in reading order: what strip_tables removes.
        "key": _key(" ".join(line.text for line in body)),
        "_words": words,  # removed by find_tables: a table's words are not another's
    }


def find_tables(page: Any) -> list[dict[str, Any]]:
    """The tables of a PDFium page (a ``pypdfium2.PdfPage``) as plain data, one per caption."""
    width_pt, height_pt = page.get_size()
    textpage = page.get_textpage()
    try:
        words = _words(textpage, height_pt)
    finally:
        textpage.close()
    middle = width_pt / 2
    tables = []
    taken: set[int] = set()
    for caption_word in [w for w in words if w.text in ("Table", "TABLE")]:
        # The caption's column: the run of words on its line that starts at "Table".
        run = [w for w in words if abs(w.top - caption_word.top) < 2 and w.x0 >= caption_word.x0]
        run.sort(key=lambda w: w.x0)
        end = caption_word.x1
        for w in run[1:]:
            if w.x0 - end > 12:
                break
            end = w.x1
        if not re.match(r"(\d+|[IVX]+)[:.]?", run[1].text if len(run) > 1 else ""):
            continue
        if end < middle + 10:
            left, right = 0.0, middle
        elif caption_word.x0 > middle - 20:
            left, right = middle, width_pt
        else:
            left, right = 0.0, width_pt
        lines = _lines([w for w in words if left <= (w.x0 + w.x1) / 2 < right and id(w) not in taken])
        at = next((i for i, line in enumerate(lines) if caption_word in line.words), None)
        if at is None or not has_caption(lines[at].text):
            continue
        table = _table(lines, at, left, right)
        if table:
            taken.update(id(w) for w in table.pop("_words"))
            tables.append(table)
        if len(tables) >= MAX_TABLES_PER_PAGE:
            break
    return tables


def table_lines(table: dict[str, Any]) -> list[str]:
    """Caption, then one line per row: "Header: value | Header: value" (a cell without a header
    name stands alone). Empty cells are left out."""
    header = table["header"]
    out = [table["caption"]]
    for row in table["rows"]:
        cells = [f"{h}: {v}" if h else v for h, v in zip(header, row) if v]
        if len(cells) > 1:
            out.append(" | ".join(cells))
    return out


def keyword_text(text: str) -> str | None:
    """What keyword search indexes for a chunk holding table rows (chunking.py: caption, then rows
    "Header: value | Header: value"): the caption, the column names once, then each row's values.
    None for any other chunk: its text as it is.

    The rows name their columns for the reader and for evidence scoring ("Params: 110M" says what
    110M is), but indexed as they are, a table repeats its column names in every row and outranks
    a page's prose for those words ("hidden size" x8 in Megatron's configuration tables buried
    BERT's page: docs/evidence.md, key fact in the answer 0.764 -> 0.792 with this)."""
    lines = text.split("\n")
    rows = [i for i, line in enumerate(lines) if is_row(line.strip())]
    if not rows:
        return None
    headers: list[str] = []
    out = list(lines)
    for i in rows:
        line = lines[i].strip()
        for cell in line.split(" | "):
            if ": " in cell and (name := cell.split(": ", 1)[0]) not in headers:
                headers.append(name)
        out[i] = " ".join(row_values(line))
    if not headers:
        return None
    return "\n".join(out[: rows[0]] + [" ".join(headers)] + out[rows[0] :])


def is_row(line: str) -> bool:
    """A row line of table_lines: several short cells joined by " | " (prose such as "p(y | x) is
    the ..." has a long piece after the bar)."""
    cells = line.split(" | ")
    return len(cells) > 1 and all(0 < len(c) <= MAX_CELL_CHARS for c in cells)


def row_values(line: str) -> list[str]:
    """The cell values of a row line, in order, without their header names (what the page shows)."""
    return [c.split(": ", 1)[1] if ": " in c else c for c in line.split(" | ")]


def _key(text: str) -> str:
    return "".join(ch for ch in text.casefold() if ch.isalnum())


def strip_tables(page_text: str, tables: list[dict[str, Any]]) -> str:
    """``page_text`` (pypdf's) without the lines that are a table's cells, so a table's numbers do
    not run into the prose around it. A line goes only when its letters and digits occur, in order,
    in one table's words and it is long enough (8+) or holds a digit (3+) not to match by chance;
    anything else stays (a table read in another order by pypdf keeps its lines in the prose)."""
    keys = [t["key"] for t in tables if t.get("key")]
    if not keys:
        return page_text
    kept = []
    for line in page_text.split("\n"):
        key = _key(line)
        long_enough = len(key) >= 8 or (len(key) >= 3 and _DIGIT.search(key))
        if long_enough and any(key in k for k in keys):
            continue
        kept.append(line)
    return "\n".join(kept)
