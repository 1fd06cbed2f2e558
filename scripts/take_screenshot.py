"""Refresh assets/chat.png: start the app, ask a question in Debian's chromium, screenshot.

    .venv/bin/python scripts/take_screenshot.py
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import free_port, wait_http  # noqa: E402
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402


def main() -> int:
    from playwright.sync_api import sync_playwright

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "webapp", "serve", "--port", str(port)], cwd=ROOT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/readyz", timeout=180)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1200, "height": 860})
            page.goto(base + "/", wait_until="domcontentloaded")
            page.locator("#chatbot").wait_for(timeout=30_000)
            for question in ("What is the capital of France?",
                             "Give me three tips for writing clear documentation."):
                page.locator("#message textarea").fill(question)
                page.locator("#send").click()
                page.wait_for_function("!document.querySelector('#chat-stats').innerText.includes('tok/s')")
                page.locator("#chat-stats").get_by_text("tok/s").wait_for(timeout=90_000)
            page.screenshot(path=str(ROOT / "assets" / "chat.png"))
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
