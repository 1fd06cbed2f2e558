"""Compare OCR engines on the same arXiv pages at 300 dpi: body-text CER and pages/s on one core.

    .venv/bin/python benchmarks/ocr_engines.py                      # Tesseract (the app's engine)
    python3 -m venv /tmp/rapid && /tmp/rapid/bin/pip install rapidocr-onnxruntime==1.4.4 pypdfium2 pypdf
    /tmp/rapid/bin/python benchmarks/ocr_engines.py --engine rapidocr   # PP-OCRv4 models (ONNX Runtime)

Each engine runs in the venv that has it (rapidocr-openvino pins an OpenVINO older than the app's,
so the PP-OCR models were measured on ONNX Runtime, outside the app's environment). The metric is
the same for both: every prose sentence (10+ words) of the born-digital page aligned on its own
against the OCR text; wrong or missing characters / sentence length. Self-contained on purpose
(no webapp import), so it runs in a bare venv.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def normalise(text: str) -> str:
    text = re.sub(r"(\w)-\s*\n\s*(\w)", r"\1\2", text)
    return re.sub(r"\s+", " ", text).strip()


def question_pages(limit: int) -> tuple[list[dict], list[tuple[str, int]]]:
    """The on-topic questions, and the first ``limit`` distinct (paper, page) pairs that answer them."""
    questions = [
        q
        for q in json.loads((ROOT / "benchmarks" / "arxiv_questions.json").read_text())["questions"]
        if not q.get("off_topic")
    ]
    chosen: list[tuple[str, int]] = []
    for q in questions:
        for page in q["pages"]:
            if (q["doc"], page) not in chosen and len(chosen) < limit:
                chosen.append((q["doc"], page))
    return questions, chosen


def body_cer(reference: str, ocr: str) -> float:
    target = normalise(ocr)
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", normalise(reference)) if len(s.split()) >= 10]
    total = errors = 0
    for s in sentences:
        start = max(
            0,
            difflib.SequenceMatcher(None, s, target, autojunk=False).find_longest_match(0, len(s), 0, len(target)).b
            - len(s),
        )
        window = target[start : start + 3 * len(s)]
        matched = sum(b.size for b in difflib.SequenceMatcher(None, s, window, autojunk=False).get_matching_blocks())
        total, errors = total + len(s), errors + len(s) - matched
    return errors / max(1, total)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine", choices=["tesseract", "rapidocr"], default="tesseract")
    ap.add_argument("--pages", type=int, default=8)
    ap.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus" / "arxiv")
    args = ap.parse_args()

    import pypdfium2 as pdfium
    from pypdf import PdfReader

    if args.engine == "tesseract":
        import pytesseract

        os.environ["OMP_THREAD_LIMIT"] = "1"  # as the app runs it
        read = lambda image: pytesseract.image_to_string(image, lang="eng")  # noqa: E731
    else:
        from rapidocr_onnxruntime import RapidOCR

        engine = RapidOCR()
        read = lambda image: "\n".join(r[1] for r in (engine(image.convert("RGB"))[0] or []))  # noqa: E731
    _, chosen = question_pages(args.pages)
    errors, seconds = [], 0.0
    for doc, page in chosen:
        reference = PdfReader(str(args.corpus / doc)).pages[page - 1].extract_text()
        image = pdfium.PdfDocument(str(args.corpus / doc))[page - 1].render(scale=300 / 72, grayscale=True).to_pil()
        started = time.perf_counter()
        text = read(image)
        seconds += time.perf_counter() - started
        errors.append(body_cer(reference, text))
    print(
        f"{args.engine}: {len(errors)} pages, body-text CER mean {sum(errors) / len(errors):.2%} "
        f"(max {max(errors):.2%}), {len(errors) / seconds:.2f} pages/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
