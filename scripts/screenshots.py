"""Screenshots of every tab at a wide (1400 px) and a narrow (400 px) width into assets/, from a real
server on a fresh data folder with one indexed PDF, one cited answer with its evidence opened on the
page (README's first picture) and one Compare run.

    .venv/bin/python scripts/screenshots.py [--models-dir models] [--out assets]

Needs what the browser tests need (Debian's chromium, Playwright). Writes assets/<tab>-<width>.png
and assets/chat.png (the wide Chat tab with its cited answer).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models-dir", type=Path, default=ROOT / "models")
    ap.add_argument("--out", type=Path, default=ROOT / "assets")
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright

    from tests.axe import open_tab
    from tests.conftest import running_app
    from tests.pdfgen import topic_pdf
    from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, bot_messages, open_app, upload_and_index

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        pdf = topic_pdf(Path(tmp) / "volcano-notes.pdf", "volcano", pages=2)
        with running_app(args.models_dir.resolve(), Path(tmp) / "data") as base:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            open_app(page, base)
            upload_and_index(page, pdf)
            page.locator("#ask-about-collection").click()
            page.locator("#message textarea").fill("How do volcanoes form?")
            page.keyboard.press("Enter")
            bot_messages(page).last.get_by_text("Sources:").wait_for(timeout=120_000)
            # The best evidence sentence opened on its page, as a reader would check the answer.
            page.locator("#evidence label").first.click()
            page.wait_for_function("document.querySelector('#page-image')?.naturalWidth > 400", timeout=60_000)
            args.out.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out / "chat.png"))
            # One Compare run (the default model, one user) so its tab shows a table and charts.
            open_tab(page, "Compare")
            targets = page.locator("#compare-targets")
            for box in targets.locator("input[type=checkbox]").all():
                box.uncheck()
            targets.locator("input[type=checkbox]").first.check()
            for label in ("2", "4"):
                page.get_by_label(label, exact=True).uncheck()
            page.locator("#compare-run").click()
            page.locator("#compare-status").get_by_text("Done").wait_for(timeout=300_000)
            for width in (1400, 400):
                page.set_viewport_size({"width": width, "height": 1000 if width > 600 else 800})
                for tab in ("Chat", "Upload", "Documents", "Compare", "Users"):
                    if open_tab(page, tab):
                        page.wait_for_timeout(700)
                        page.screenshot(path=str(args.out / f"{tab.lower()}-{width}.png"), full_page=True)
                        print(f"wrote {args.out / f'{tab.lower()}-{width}.png'}")
            browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
