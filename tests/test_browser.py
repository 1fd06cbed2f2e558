"""A real browser (Debian's chromium via Playwright) against the real server and model."""

import shutil

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not shutil.which("chromium"):
        pytest.fail("chromium is not installed; run scripts/install-test-system-deps.sh")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def bot_messages(page):
    return page.locator("#chatbot .message-row.bot-row, #chatbot [data-testid='bot']")


RECORD_SNAPSHOTS = """
() => {
  window.__snapshots = [];
  const root = document.querySelector('#chatbot');
  new MutationObserver(() => {
    const bots = root.querySelectorAll('.message-row.bot-row, [data-testid="bot"]');
    const text = bots.length ? bots[bots.length - 1].innerText.trim() : '';
    const last = window.__snapshots[window.__snapshots.length - 1];
    if (text && text !== last) window.__snapshots.push(text);
  }).observe(root, {subtree: true, childList: true, characterData: true});
}
"""


def test_chat_streams_an_answer(browser, live_server, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(live_server + "/", wait_until="networkidle")
    page.evaluate(RECORD_SNAPSHOTS)  # every distinct text the answer shows while it is written
    page.locator("#message textarea").fill("What is the capital of France? Then tell me one fact about it.")
    page.locator("#send").click()
    page.locator("#chat-stats").get_by_text("tok/s").wait_for(timeout=90_000)
    final = bot_messages(page).last.inner_text()
    snapshots = page.evaluate("window.__snapshots")
    assert "Paris" in final
    # Streaming: the answer was seen growing through several prefixes of the final text.
    assert len(snapshots) >= 3, snapshots
    assert all(final.strip().startswith(s[:-1].strip()) for s in snapshots[:-1] if len(s) > 1), snapshots
    page.screenshot(path=str(tmp_path / "chat.png"), full_page=True)
    page.close()


def test_empty_message_keeps_the_page_working(browser, live_server):
    page = browser.new_page()
    page.goto(live_server + "/", wait_until="networkidle")
    page.locator("#send").click()
    page.get_by_text("Type a message first.").wait_for(timeout=10_000)
    page.locator("#message textarea").fill("Say hello.")
    page.locator("#send").click()
    page.locator("#chat-stats").get_by_text("tok/s").wait_for(timeout=60_000)
    page.close()
