"""Write small, valid PDFs for tests without any PDF library (so the suite runs anywhere).

Each page gets its text as Helvetica lines; ``image_only`` pages carry just a
grey image XObject and no text layer. Encryption is applied with pypdf.
"""

from __future__ import annotations

import zlib
from pathlib import Path


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def make_pdf(
    path: Path,
    pages: list[str | None | list[tuple[float, float, str]]],
    title: str = "test document",
    figure: tuple[str, int] | None = None,
) -> Path:
    """``pages``: text per page; None makes an image-only page; a list of (x, y, text) places each
    text at that point (PDF points from the bottom left): table cells in columns.

    ``figure=(label, drawing_bytes)`` draws a vector figure (a form XObject) on every text
    page: ``drawing_bytes`` of path operators, like a dense plot, and one text label.
    """
    objects: list[bytes] = []

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    image = add(
        b"<< /Type /XObject /Subtype /Image /Width 8 /Height 8 /ColorSpace /DeviceGray "
        b"/BitsPerComponent 8 /Filter /FlateDecode /Length %d >>\nstream\n"
        % len(zlib.compress(bytes(64)))
        + zlib.compress(bytes(range(64)))
        + b"\nendstream"
    )
    form = None
    if figure is not None:
        label, size = figure
        drawing = b"0 0 m 100 100 l S\n" * (size // 18 + 1)
        body = drawing + f"BT /F1 9 Tf 10 10 Td ({_escape(label)}) Tj ET".encode("latin-1")
        form = add(
            b"<< /Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources << /Font << /F1 %d 0 R >> >> "
            b"/Length %d >>\nstream\n" % (font, len(body)) + body + b"\nendstream"
        )
    pages_id = len(objects) + 2 * len(pages) + 1  # the Pages object comes right after the pages
    page_ids = []
    for text in pages:
        if text is None:
            content = b"q 400 0 0 400 100 200 cm /Im1 Do Q"
        elif isinstance(text, list):
            content = "\n".join(f"BT /F1 10 Tf {x} {y} Td ({_escape(t)}) Tj ET" for x, y, t in text).encode("latin-1")
        else:
            lines = []
            for i, line in enumerate(text.split("\n")):
                lines.append(f"BT /F1 11 Tf 60 {760 - 14 * i} Td ({_escape(line)}) Tj ET")
            content = "\n".join(lines).encode("latin-1", errors="replace")
            if form is not None:
                content += b"\nq 0.5 0 0 0.5 50 50 cm /Fx1 Do Q"
        stream = add(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
        page_ids.append(
            add(
                b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
                b"/Resources << /Font << /F1 %d 0 R >> /XObject << /Im1 %d 0 R%s >> >> >>"
                % (pages_id, stream, font, image, b" /Fx1 %d 0 R" % form if form else b"")
            )
        )
    kids = b" ".join(b"%d 0 R" % p for p in page_ids)
    assert add(b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(page_ids))) == pages_id
    info = add(b"<< /Title (%s) >>" % _escape(title).encode("latin-1"))
    catalog = add(b"<< /Type /Catalog /Pages %d 0 R >>" % pages_id)
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root %d 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        catalog,
        info,
        xref,
    )
    Path(path).write_bytes(bytes(out))
    return Path(path)


def encrypt_pdf(src: Path, dst: Path, password: str) -> Path:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(str(src)))
    writer.encrypt(user_password=password, owner_password=password + "-owner", algorithm="AES-128")
    with open(dst, "wb") as fh:
        writer.write(fh)
    return Path(dst)


TOPICS = {
    "volcano": "Volcanoes form where magma from the mantle reaches the surface. The basaltic lava of shield\n"
    "volcanoes such as Mauna Loa flows far before it cools, building broad gentle slopes.",
    "bees": "Honey bees communicate the direction of flowers with the waggle dance. The angle of the dance\n"
    "relative to vertical encodes the angle between the food source and the sun.",
    "railway": "The Trans-Siberian Railway links Moscow with Vladivostok over 9,289 kilometres, the longest\n"
    "railway line in the world, crossing eight time zones in about seven days.",
    "coffee": "Espresso is brewed by forcing hot water at about nine bars of pressure through finely ground\n"
    "coffee, producing a concentrated shot topped with a layer called crema.",
}


def topic_pdf(path: Path, topic: str, pages: int = 3, marker: str = "") -> Path:
    body = TOPICS[topic]
    texts = [
        f"{topic.title()} notes, page {n}. {marker}\n" + body + f"\nSection {n} repeats the key facts."
        for n in range(1, pages + 1)
    ]
    return make_pdf(path, texts, title=f"{topic} notes")


def scanned_copy(
    src: Path,
    dst: Path,
    dpi: int = 300,
    pages: list[int] | None = None,
    rotate: float = 0.0,
    noise: float = 0.0,
    seed: int = 0,
) -> Path:
    """An image-only copy of ``src`` (its pages drawn at ``dpi``, as a scanner would), optionally
    slightly rotated and with salt-and-pepper noise. ``pages``: 1-based pages to keep (default all)."""
    import random

    import pypdfium2 as pdfium
    from PIL import Image

    document = pdfium.PdfDocument(str(src))
    try:
        numbers = pages or list(range(1, len(document) + 1))
        images = []
        for n in numbers:
            image = document[n - 1].render(scale=dpi / 72, grayscale=True).to_pil().convert("L")
            if rotate:
                image = image.rotate(rotate, expand=False, fillcolor=255, resample=Image.BICUBIC)
            if noise:
                rng = random.Random(seed + n)
                pixels = image.load()
                for _ in range(int(noise * image.size[0] * image.size[1])):
                    x, y = rng.randrange(image.size[0]), rng.randrange(image.size[1])
                    pixels[x, y] = rng.choice((0, 255))
            images.append(image)
    finally:
        document.close()
    images[0].save(dst, "PDF", resolution=dpi, save_all=True, append_images=images[1:])
    return dst


def joined(parts: list[Path], dst: Path) -> Path:
    """The pages of several PDFs, in order, as one PDF (e.g. a born-digital page and a scanned one)."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    for part in parts:
        writer.append(str(part))
    with open(dst, "wb") as fh:
        writer.write(fh)
    return dst
