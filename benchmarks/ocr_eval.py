"""OCR quality and speed on real pages: arXiv pages drawn as scans, read back by the app's OCR.

    .venv/bin/python benchmarks/ocr_eval.py                 # 6 pages x 4 scan variants, then retrieval
    .venv/bin/python benchmarks/ocr_eval.py --pages 10 --json docs/ocr.json

Pages are those that answer questions of benchmarks/arxiv_questions.json. Each is drawn as an
image-only PDF (tests/pdfgen.scanned_copy) at 300 dpi, 150 dpi, 300 dpi turned 1 degree, and 300 dpi
with salt-and-pepper noise, then read by webapp/rag/ocr.py exactly as indexing does (sandboxed child,
Tesseract). Character error rate is against pypdf's text of the born-digital page (hyphenated line
breaks joined, whitespace collapsed): "body text" aligns each prose sentence (10+ words) on its
own, "whole page" aligns the whole page at once (then a figure label or a column read in another
order counts as errors).
Then the born-digital pages and their 300 dpi scans are indexed into two collections and the
questions about those pages are asked of each: hit@1 / hit@5 by page.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# Nothing heavy at the top: every sandboxed child (PDF reading, OCR) re-runs this module.
from benchmarks.ocr_engines import normalise  # noqa: E402  (standard library only)

VARIANTS = {
    "300 dpi": {"dpi": 300},
    "150 dpi": {"dpi": 150},
    "300 dpi, turned 1 deg": {"dpi": 300, "rotate": 1.0},
    "300 dpi, noisy": {"dpi": 300, "noise": 0.002},
}


def cer(reference: str, ocr: str) -> float:
    a, b = normalise(reference), normalise(ocr)
    ops = difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
    edits = sum(max(i2 - i1, j2 - j1) for op, i1, i2, j1, j2 in ops if op != "equal")
    return edits / max(1, len(a))


def body_cer(reference: str, ocr: str) -> float:
    """CER over the page's prose only: each sentence of 10+ words of the reference aligned on its own
    against the OCR text (columns, figure labels and tables read in another order do not count as
    errors); missing or wrong characters of those sentences / their length."""
    from webapp.rag.sentences import split_sentences

    target = normalise(ocr)
    sentences = [s for s in split_sentences(reference) if len(s.split()) >= 10]
    total = errors = 0
    for sentence in sentences:
        matcher = difflib.SequenceMatcher(None, sentence, target, autojunk=False)
        start = max(0, matcher.find_longest_match(0, len(sentence), 0, len(target)).b - len(sentence))
        window = target[start : start + 3 * len(sentence)]
        matched = sum(
            b.size for b in difflib.SequenceMatcher(None, sentence, window, autojunk=False).get_matching_blocks()
        )
        total += len(sentence)
        errors += len(sentence) - matched
    return errors / max(1, total)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus" / "arxiv")
    ap.add_argument("--models-dir", type=Path, default=ROOT / "models")
    ap.add_argument("--pages", type=int, default=6)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from pypdf import PdfReader, PdfWriter

    from benchmarks.load import cpu_info
    from benchmarks.ocr_engines import question_pages
    from tests.pdfgen import scanned_copy
    from webapp.documents.service import DocumentService
    from webapp.rag.ocr import ocr_pages
    from webapp.settings import Settings

    questions, chosen = question_pages(args.pages)
    work = Path(tempfile.mkdtemp(prefix="docchat-ocr-"))
    settings = Settings(models_dir=args.models_dir, data_dir=work / "data")
    print(f"{len(chosen)} pages; CPU: {cpu_info()}", flush=True)

    # -- single born-digital pages, and their scans ------------------------------------------------------
    born, reference = {}, {}
    for doc, page in chosen:
        writer = PdfWriter()
        writer.add_page(PdfReader(str(args.corpus / doc)).pages[page - 1])
        path = work / f"{Path(doc).stem}-p{page}.pdf"
        with open(path, "wb") as fh:
            writer.write(fh)
        born[(doc, page)] = path
        reference[(doc, page)] = PdfReader(str(path)).pages[0].extract_text()

    rows = {}
    for name, variant in VARIANTS.items():
        errors, body, seconds = [], [], 0.0
        for key, path in born.items():
            scan = scanned_copy(path, work / f"{path.stem}-{len(rows)}.pdf", **variant)
            started = time.perf_counter()
            result = ocr_pages(
                scan,
                [1],
                dpi=settings.ocr_dpi,
                language=settings.ocr_language,
                timeout_s=settings.ocr_page_timeout_s,
                memory_mb=settings.pdf_memory_mb,
                nice=0,
            )
            seconds += time.perf_counter() - started
            text = result.texts.get(1, "")
            errors.append(cer(reference[key], text) if 1 in result.texts else 1.0)
            body.append(body_cer(reference[key], text) if 1 in result.texts else 1.0)
        rows[name] = {
            "cer_whole_page_mean": round(sum(errors) / len(errors), 4),
            "cer_body_text_mean": round(sum(body) / len(body), 4),
            "cer_body_text_max": round(max(body), 4),
            "pages_per_s": round(len(errors) / seconds, 3),
        }
        print(
            f"{name:24s} body-text CER mean {rows[name]['cer_body_text_mean']:.2%} "
            f"(max {rows[name]['cer_body_text_max']:.2%}), whole-page CER {rows[name]['cer_whole_page_mean']:.2%}, "
            f"{rows[name]['pages_per_s']:.2f} pages/s",
            flush=True,
        )

    # -- throughput on one multi-page scan (pages are read side by side, one per usable CPU) -------------------
    from tests.pdfgen import joined

    many = scanned_copy(joined(list(born.values()), work / "all-pages.pdf"), work / "all-pages-scan.pdf", dpi=300)
    started = time.perf_counter()
    result = ocr_pages(
        many,
        list(range(1, len(born) + 1)),
        dpi=settings.ocr_dpi,
        language=settings.ocr_language,
        timeout_s=settings.ocr_page_timeout_s,
        memory_mb=settings.pdf_memory_mb,
        nice=0,
    )
    throughput = round(result.pages / (time.perf_counter() - started), 3)
    print(f"one {len(born)}-page scan at 300 dpi: {throughput:.2f} pages/s", flush=True)

    # -- retrieval: born-digital pages vs their 300 dpi scans ------------------------------------------------
    docs = DocumentService(settings)
    label = {key: f"{Path(key[0]).stem}-p{key[1]}.pdf" for key in chosen}
    docs.add_files("born", [(born[k], label[k]) for k in chosen])
    scans = [(scanned_copy(born[k], work / f"scan-{label[k]}", dpi=300), label[k]) for k in chosen]
    docs.add_files("scanned", scans)
    started = time.perf_counter()
    print(docs.index_queued("born").summary())
    print(docs.index_queued("scanned").summary(), f"({time.perf_counter() - started:.0f} s with the born ones)")
    asked = [q for q in questions if any((q["doc"], p) in chosen for p in q["pages"])]
    retrieval = {}
    for collection in ("born", "scanned"):
        h1 = h5 = 0
        for q in asked:
            wanted = {label[(q["doc"], p)] for p in q["pages"] if (q["doc"], p) in chosen}
            got = [p.document for p in docs.search(collection, q["q"], k=5)]
            h1 += bool(got[:1]) and got[0] in wanted
            h5 += any(g in wanted for g in got)
        retrieval[collection] = {
            "questions": len(asked),
            "hit@1": round(h1 / max(1, len(asked)), 3),
            "hit@5": round(h5 / max(1, len(asked)), 3),
        }
        print(f"retrieval from {collection} pages: {retrieval[collection]}")
    docs.close()
    summary = {
        "cpu": cpu_info(),
        "pages": len(chosen),
        "ocr": rows,
        "multi_page_pages_per_s": throughput,
        "retrieval": retrieval,
        "note": "retrieval over a collection of just these pages (one per page)",
    }
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
