"""Excel workbooks (.xlsx) through openpyxl: each sheet in blocks of rows, every row named by the
sheet's header row ("Region: North | Q3 revenue: 1.2M")."""

from __future__ import annotations

from webapp.readers.base import DocumentProblem, Format, Limits, Section, check_size, check_zip, is_zip, row_lines

KIND = "Excel workbook"
ROWS_PER_SECTION = 50


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def read(path: str, limits: Limits) -> list[Section]:
    import openpyxl

    check_zip(path, "xl/workbook.xml", limits, KIND)
    try:
        # read_only streams rows; data_only gives the values last computed, not the formulas.
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:
        raise DocumentProblem(f"This file is damaged or not a valid {KIND}.", "corrupt") from exc
    sections: list[Section] = []
    chars = 0
    try:
        for sheet in book.worksheets:
            header: list[str] | None = None
            block: list[list[str]] = []
            first = last = 0
            for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
                row = [_cell(v) for v in values]
                if not any(row):
                    continue
                if header is None:
                    header = row
                    continue
                if not block:
                    first = number
                last = number
                block.append(row)
                chars += sum(len(c) for c in row)
                if chars > limits.max_chars or len(sections) > limits.max_sections:
                    raise DocumentProblem(f"This {KIND} holds more than the limit set for one document.", "too-large")
                if len(block) == ROWS_PER_SECTION:
                    text = "\n".join(row_lines(header, block))
                    sections.append(Section(f"sheet {sheet.title}, rows {first}–{number}", text))
                    block = []
            if block and header is not None:
                text = "\n".join(row_lines(header, block))
                sections.append(Section(f"sheet {sheet.title}, rows {first}–{last}", text))
            elif header is not None and not sections:
                sections.append(Section(f"sheet {sheet.title}", " | ".join(c for c in header if c)))
    finally:
        book.close()
    return check_size(sections, limits, KIND)


FORMAT = Format(
    name="xlsx",
    extensions=(".xlsx",),
    kind=KIND,
    media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    looks_right=is_zip,
    read=read,
)
