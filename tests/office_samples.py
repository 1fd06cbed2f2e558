"""Real sample files of every non-PDF format the app reads, written by the libraries people's tools
use (python-docx, python-pptx, openpyxl) or as the text formats are: each section holds a phrase no
other section has, so a test can search for it and check the locator the citation names."""

from __future__ import annotations

import zipfile
from pathlib import Path

# (phrase, where the citation must say it is) per format
DOCX_PHRASES = [
    ("The Kestrel turbine spins at forty revolutions per minute.", "section 1 Overview"),
    ("Maintenance crews replace the Kestrel gearbox oil every ninety days.", "section 1.1 Maintenance"),
    ("Blade icing stops the Kestrel turbine below minus twelve degrees.", "section 2 Failures"),
]
DOCX_TABLE_ROW = "Component: gearbox | Supplier: Halvorsen Gear Works | Lead time: 14 weeks"
PPTX_PHRASES = [
    ("Quarterly revenue of the Osprey product line grew by eighteen percent.", "slide 1"),
    ("The Osprey roadmap adds offline sync in the autumn release.", "slide 2"),
    ("Speaker note: Osprey churn fell to three percent.", "slide 3"),
]
HTML_PHRASES = [
    ("The Heron wiki explains how to request a laboratory badge.", "section 1 Heron handbook"),
    ("Badges for the Heron laboratory are collected at reception desk four.", "section 1.1 Badges"),
    ("Heron parking permits are renewed every January.", "section 1.2 Parking"),
]
MD_PHRASES = [
    ("The Puffin service stores its queue in a ring buffer.", "section 1 Puffin design"),
    ("Puffin retries a failed delivery after thirty seconds.", "section 1.1 Retries"),
]
TXT_PHRASE = "The Gannet archive keeps nightly snapshots for sixty days."
XLSX_ROW = "Region: Northfjord | Manager: Ingrid Solberg | Q3 revenue: 412000"


def docx_sample(path: Path) -> Path:
    import docx

    d = docx.Document()
    d.add_heading("Overview", level=1)
    d.add_paragraph(DOCX_PHRASES[0][0])
    d.add_heading("Maintenance", level=2)
    d.add_paragraph(DOCX_PHRASES[1][0])
    table = d.add_table(rows=3, cols=3)
    for r, row in enumerate(
        [
            ["Component", "Supplier", "Lead time"],
            ["gearbox", "Halvorsen Gear Works", "14 weeks"],
            ["blade", "Nordvik", "6 weeks"],
        ]
    ):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    d.add_heading("Failures", level=1)
    d.add_paragraph(DOCX_PHRASES[2][0])
    d.save(path)
    return path


def pptx_sample(path: Path) -> Path:
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    for n, (phrase, _) in enumerate(PPTX_PHRASES):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = f"Osprey update {n + 1}"
        if n == 2:  # the third slide's fact is in its speaker notes
            slide.placeholders[1].text = "Customer figures"
            slide.notes_slide.notes_text_frame.text = phrase.removeprefix("Speaker note: ")
        else:
            slide.placeholders[1].text = phrase
    table = deck.slides[1].shapes.add_table(2, 2, Inches(1), Inches(5), Inches(4), Inches(1)).table
    for r, row in enumerate([["Feature", "Release"], ["offline sync", "autumn"]]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    deck.save(path)
    return path


def html_sample(path: Path) -> Path:
    path.write_text(
        "<!doctype html><html><head><title>Heron</title><style>p{color:red}</style>"
        "<script>var secret = 'never indexed';</script></head><body>"
        "<nav>Home | About | Contact</nav>"
        f"<h1>Heron handbook</h1><p>{HTML_PHRASES[0][0]}</p>"
        f"<h2>Badges</h2><p>{HTML_PHRASES[1][0]}</p>"
        "<table><caption>Desks</caption><tr><th>Desk</th><th>Floor</th></tr><tr><td>four</td><td>ground</td></tr></table>"
        f"<h2>Parking</h2><ul><li>{HTML_PHRASES[2][0]}</li></ul></body></html>",
        encoding="utf-8",
    )
    return path


def md_sample(path: Path) -> Path:
    path.write_text(
        f"# Puffin design\n\n{MD_PHRASES[0][0]}\n\n## Retries\n\n{MD_PHRASES[1][0]}\n\n"
        "| Setting | Default |\n|---|---|\n| retry delay | 30 s |\n",
        encoding="utf-8",
    )
    return path


def txt_sample(path: Path) -> Path:
    filler = "\n".join(f"Line {n} of the Gannet operations log, nothing of note." for n in range(1, 120))
    path.write_text(f"{filler}\n\n{TXT_PHRASE}\n", encoding="utf-8")
    return path


def xlsx_sample(path: Path) -> Path:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Sales"
    sheet.append(["Region", "Manager", "Q3 revenue"])
    sheet.append(["Northfjord", "Ingrid Solberg", 412000])
    sheet.append(["Southvik", "Per Dahl", 98000])
    book.save(path)
    return path


def zip_bomb(path: Path, unpacked_mb: int = 700) -> Path:
    """A .docx-named zip whose one part unpacks to ``unpacked_mb`` MB of zeros (a few hundred KB packed)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        with z.open("word/document.xml", "w", force_zip64=True) as part:
            block = b"\0" * (1 << 20)
            for _ in range(unpacked_mb):
                part.write(block)
    return path
