"""A real browser (Debian's chromium via Playwright) against the real server and model."""

import shutil

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not shutil.which("chromium"):
        pytest.fail("chromium is not installed; run scripts/install-test-system-deps.sh")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def open_app(page, base: str, new_conversation: bool = True) -> None:
    """Load the UI and wait until Gradio has rendered it and filled it for the user; then start a
    new conversation (the page reopens the newest one). (Not "networkidle": the page keeps a
    heartbeat connection open, which is how the server learns that a tab has closed.)"""
    page.goto(base + "/", wait_until="domcontentloaded")
    page.locator("#chatbot").wait_for(timeout=30_000)
    page.locator("#message textarea").wait_for(timeout=30_000)
    wait_until_loaded(page)
    if new_conversation:
        page.locator("#new-chat").click()
        page.wait_for_function(
            "!document.querySelector('#chatbot [data-testid=\"bot\"], #chatbot .bot-row')", timeout=10_000
        )


def wait_until_loaded(page) -> None:
    """The page's per-user load has run once the banner (empty without sign-in) is in place."""
    page.locator("#user-banner").wait_for(state="attached", timeout=30_000)


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


def record_snapshots(page) -> None:
    # Gradio renders after the network goes idle; observe only once the chatbot exists.
    page.locator("#chatbot").wait_for(timeout=30_000)
    page.evaluate(RECORD_SNAPSHOTS)


def test_chat_streams_an_answer(browser, live_server, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    open_app(page, live_server)
    record_snapshots(page)  # every distinct text the answer shows while it is written
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
    open_app(page, live_server)
    page.locator("#send").click()
    page.locator("#chat-stats").get_by_text("Type a message first.").wait_for(timeout=10_000)
    page.locator("#message textarea").fill("Say hello.")
    page.locator("#send").click()
    page.locator("#chat-stats").get_by_text("tok/s").wait_for(timeout=60_000)
    page.close()


def test_enter_sends_and_shift_enter_adds_a_line(browser, live_server):
    """What the placeholder promises, with the keyboard as a person uses it."""
    page = browser.new_page()
    open_app(page, live_server)
    box = page.locator("#message textarea")
    box.click()
    page.keyboard.type("Say hello")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("in one word.")
    assert box.input_value() == "Say hello\nin one word."  # Shift+Enter: a new line, nothing sent
    assert bot_messages(page).count() == 0
    page.keyboard.press("Enter")
    page.locator("#chat-stats").get_by_text("tok/s").wait_for(timeout=60_000)
    assert box.input_value() == ""
    user = page.locator("#chatbot .message-row.user-row, #chatbot [data-testid='user']").last
    assert "Say hello" in user.inner_text() and "in one word." in user.inner_text()
    assert bot_messages(page).last.inner_text().strip()
    page.close()


def pick(page, elem_id, option):
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def upload_and_index(page, pdf):
    """Upload one PDF in the Upload tab with "index right after" on; the result box once indexed."""
    page.get_by_role("tab", name="Upload").click()
    page.locator("#upload-files input[type=file]").set_input_files(str(pdf))
    page.wait_for_timeout(500)
    page.locator("#upload-button").click()
    result = page.locator("#upload-result")
    result.get_by_text("Indexed 1 document").wait_for(timeout=90_000)
    return result


def ask_documents(page, collection: str, question: str) -> str:
    """Ask in the Chat tab with a collection picked; the answer's text once its sources line is shown."""
    page.get_by_role("tab", name="Chat").click()
    pick(page, "collection-picker", collection)
    page.locator("#message textarea").fill(question)
    page.locator("#send").click()
    bot = bot_messages(page).last
    bot.get_by_text("Sources:").wait_for(timeout=90_000)
    return bot.inner_text()


def test_upload_index_and_ask_with_citation(browser, live_server, tmp_path):
    from tests.pdfgen import make_pdf

    pdf = make_pdf(
        tmp_path / "travel-policy.pdf",
        [
            "Travel policy. Section 1: booking trips through the travel desk.",
            "Section 2: Per diem. Employees travelling abroad receive a per diem of 68 euros per day\n"
            "for meals, paid with the next salary.",
        ],
    )
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    open_app(page, live_server)
    result = upload_and_index(page, pdf)
    assert "travel-policy.pdf" in result.inner_text() and "added" in result.inner_text()

    page.get_by_role("tab", name="Documents").click()
    table = page.locator("#documents-table")
    page.wait_for_function(
        "document.querySelector('#documents-table').innerText.includes('travel-policy.pdf')", timeout=10_000
    )
    assert "indexed" in table.inner_text()

    text = ask_documents(page, "default", "What is the per diem for employees travelling abroad?")
    assert "travel-policy.pdf, p. 2" in text
    page.screenshot(path=str(tmp_path / "rag.png"), full_page=True)
    page.close()


def test_markdown_images_in_a_pdf_are_not_fetched_by_the_browser(browser, live_server, tmp_path):
    """A PDF line `![](http://tracker/...)` shown as a source passage or quoted in an answer must not
    make the reader's browser fetch it (a tracking pixel, or a way to leak what is on screen)."""
    from tests.json_http import JSONHandler, LoopbackServer
    from tests.pdfgen import make_pdf

    hits = []

    class Tracker(JSONHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_json(200, {})

    with LoopbackServer(Tracker) as tracker:
        pixel = f"{tracker.url}/pixel.png"
        pdf = make_pdf(
            tmp_path / "visitor-rules.pdf",
            [
                "Visitor rules. Section 1: opening hours of the building.",
                "Section 2: Visitors must sign in at the blue front desk and wear a visitor badge at all times.\n"
                f'![]({pixel})\n<img src="{pixel}?html">\nVisitors sign in at the blue front desk.',
            ],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        open_app(page, live_server)
        upload_and_index(page, pdf)
        text = ask_documents(page, "default", "Where must visitors sign in?")
        assert "visitor-rules.pdf" in text
        page.get_by_text("Source passages of the last answer").click()
        page.locator("#chat-sources").get_by_text("front desk").first.wait_for(timeout=10_000)
        page.wait_for_timeout(1500)
        assert not hits, hits
        page.close()


def test_switch_the_embedding_model_from_the_index_tab(browser, registry_dir, tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT, running_app
    from tests.pdfgen import make_pdf

    data = tmp_path / "data"
    pdf = make_pdf(
        tmp_path / "leave-policy.pdf",
        [
            "Leave policy. Section 1: how to request leave through the HR portal.",
            "Section 2: Parental leave. Parents receive sixteen weeks of paid parental leave,\n"
            "which can be split into two blocks within the first year.",
        ],
    )
    out = subprocess.run(
        [sys.executable, "-m", "webapp", "--models-dir", str(registry_dir), "--data-dir", str(data), "index", str(pdf)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    with running_app(registry_dir, data) as base:
        page = browser.new_page(viewport={"width": 1280, "height": 1200})
        open_app(page, base)
        page.get_by_role("tab", name="Documents").click()
        page.get_by_text("Embedding model", exact=True).click()
        note = page.locator("#embedding-model")
        assert "all-minilm-l6-v2-static" in note.inner_text()
        pick(page, "reembed-model", "all-minilm-l6-v2")
        page.locator("#reembed-button").click()
        note.get_by_text("Re-embedded 2 chunks").wait_for(timeout=90_000)
        assert "embedded with all-minilm-l6-v2." in note.inner_text().replace("**", "")
        # Questions use the new model straight away, in the same app.
        assert "leave-policy.pdf, p. 2" in ask_documents(
            page, "default", "How many weeks of paid parental leave do parents get?"
        )
        page.close()


@pytest.mark.interop
def test_pick_the_remote_model_and_get_a_streamed_answer(browser, registry_dir, llama_server, key_file, tmp_path):
    import json

    from tests.conftest import running_app

    endpoints = json.dumps([{"name": "llama", "base_url": llama_server["base_url"], "api_key_file": str(key_file)}])
    with running_app(registry_dir, tmp_path / "data", {"DOCCHAT_REMOTE_ENDPOINTS": endpoints}) as base:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        open_app(page, base)
        record_snapshots(page)
        pick(page, "model-picker", "smollm2 @ llama (remote)")
        page.locator("#message textarea").fill("What is the capital of France? Answer in two sentences.")
        page.locator("#send").click()
        page.locator("#chat-stats").get_by_text("smollm2").wait_for(timeout=90_000)
        assert "remote:llama/smollm2" in page.locator("#chat-stats").inner_text()
        # structure, not words: what a 135M model says on llama.cpp differs between CPUs
        assert bot_messages(page).last.inner_text().strip()
        assert len(page.evaluate("window.__snapshots")) >= 3
        page.close()


def test_compare_two_targets_shows_table_and_plots(browser, live_server):
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    open_app(page, live_server)
    page.get_by_role("tab", name="Compare").click()
    targets = page.locator("#compare-targets")
    # exactly two targets that `make models` always builds: int4 on OpenVINO and the GGUF loaded directly
    for box in targets.locator("input[type=checkbox]").all():
        box.uncheck()
    targets.get_by_label("smollm2-135m-instruct-int4 · OpenVINO").check()
    targets.get_by_label("SmolLM2-135M-Instruct.Q4_1 (GGUF) · OpenVINO").check()
    for label in ("2", "4"):  # keep the run short: one user only
        page.get_by_label(label, exact=True).uncheck()
    page.locator("#compare-run").click()
    page.locator("#compare-status").get_by_text("Done").wait_for(timeout=180_000)
    # the status and the table arrive in one update, but the table renders a moment later
    page.wait_for_function(
        "document.querySelector('#compare-table').innerText.includes('SmolLM2-135M-Instruct.Q4_1 (GGUF)')",
        timeout=20_000,
    )
    table = page.locator("#compare-table").inner_text()
    assert "smollm2-135m-instruct-int4" in table and "SmolLM2-135M-Instruct.Q4_1 (GGUF)" in table
    assert table.count("ok") >= 2
    for plot in ("#compare-bar", "#compare-bar-decode", "#compare-sweep"):
        page.locator(f"{plot} canvas, {plot} svg").first.wait_for(timeout=20_000)
    answers = [page.locator(f"#compare-answer-{i} textarea").input_value() for i in range(2)]
    assert all(a.strip() for a in answers)  # both answers streamed into their panes
    files = page.locator("#compare-files").inner_text().replace("\n", "")
    assert "benchmark.csv" in files and "benchmark.json" in files and "benchmark.md" in files
    page.close()


TABLE_AND_BARS = """() => {
  const box = document.querySelector('#compare-table .virtual-table-viewport') || document.querySelector('#compare-table');
  const bars = (id) => Array.from(document.querySelectorAll('#' + id + ' .mark-rect path')).map(p => p.getBBox().height);
  return {table: [box.scrollWidth, box.clientWidth], page: [document.documentElement.scrollWidth, window.innerWidth],
          ttft: bars('compare-bar'), decode: bars('compare-bar-decode'), sweep: bars('compare-sweep')};
}"""


def test_compare_one_target_draws_its_bars_and_a_table_that_fits(browser, live_server):
    """One target, one number of users: every chart still shows its bars (a bar per measure and per
    number of users, from zero), and the results table fits its column at 1400 and at 400 px,
    without the page scrolling sideways."""
    from tests.axe import violations

    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    open_app(page, live_server)
    page.get_by_role("tab", name="Compare").click()
    targets = page.locator("#compare-targets")
    for box in targets.locator("input[type=checkbox]").all():
        box.uncheck()
    targets.get_by_label("smollm2-135m-instruct-int4 · OpenVINO").check()
    for label in ("2", "4"):
        page.get_by_label(label, exact=True).uncheck()
    page.locator("#compare-run").click()
    page.locator("#compare-status").get_by_text("Done").wait_for(timeout=180_000)
    page.wait_for_function("document.querySelectorAll('#compare-sweep .mark-rect path').length > 0", timeout=20_000)
    for width in (1400, 400):
        page.set_viewport_size({"width": width, "height": 1200})
        page.wait_for_timeout(1500)  # the plots redraw at their new width
        seen = page.evaluate(TABLE_AND_BARS)
        assert seen["page"][0] <= seen["page"][1], (width, seen)  # no sideways scrolling of the page
        assert seen["table"][0] <= seen["table"][1] + 1, (width, seen)  # the table fits its box
        for chart in ("ttft", "decode", "sweep"):
            assert len(seen[chart]) == 1 and seen[chart][0] > 20, (width, chart, seen)
        assert violations(page) == [], width  # the filled table and charts pass axe-core too
    assert "1 user" in page.locator("#compare-sweep").inner_text()
    table = page.locator("#compare-table").inner_text()
    assert "TTFT ms" in table and "smollm2-135m-instruct-int4" in table
    page.close()


def test_click_an_evidence_sentence_to_see_its_page_highlighted(browser, live_server, tmp_path):
    from tests.pdfgen import make_pdf

    pdf = make_pdf(
        tmp_path / "badge-rules.pdf",
        [
            "Badge rules. Section 1: opening hours of the office building on weekdays.",
            "Section 2: Lost badges. A lost badge must be reported to the security office within 24 hours,\n"
            "and a replacement badge costs 15 euros.",
        ],
    )
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    open_app(page, live_server)
    upload_and_index(page, pdf)
    ask_documents(page, "default", "How soon must a lost badge be reported to the security office?")
    evidence = page.locator("#evidence")
    evidence.get_by_text("badge-rules.pdf, p. 2").first.wait_for(timeout=10_000)
    assert "within 24 hours" in evidence.inner_text()
    evidence.locator("label").first.click()  # the best sentence
    page.locator("#page-image").wait_for(timeout=20_000)
    page.wait_for_function("document.querySelector('#page-image').naturalWidth > 400", timeout=30_000)
    link = page.locator("#page-pdf-link")
    assert "at page 2" in link.inner_text()
    href = link.get_attribute("href")
    assert href.endswith(".pdf#page=2")
    original = page.request.get(live_server + "/" + href.split("#")[0])
    assert original.status == 200 and original.headers["content-type"] == "application/pdf"
    # Reopened later (here: a reload), the answer comes back with its evidence, which still opens its page.
    page.reload()
    evidence = page.locator("#evidence")
    evidence.get_by_text("badge-rules.pdf, p. 2").first.wait_for(timeout=20_000)
    assert "within 24 hours" in evidence.inner_text()
    assert page.locator("#page-image").count() == 0
    evidence.locator("label").first.click()
    page.wait_for_function("document.querySelector('#page-image')?.naturalWidth > 400", timeout=30_000)
    page.close()


def test_a_word_report_and_a_slide_deck_are_uploaded_and_their_evidence_opens_the_cited_section(
    browser, live_server, tmp_path
):
    """Formats without pages (issue 25): uploaded through the Upload tab like a PDF, cited by section
    and slide, and an evidence item opens the section's text with the sentence marked."""
    from tests.office_samples import DOCX_PHRASES, PPTX_PHRASES, docx_sample, pptx_sample

    report, deck = docx_sample(tmp_path / "turbine-report.docx"), pptx_sample(tmp_path / "osprey-deck.pptx")
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    open_app(page, live_server)
    page.get_by_role("tab", name="Upload").click()
    page.locator("#upload-files input[type=file]").set_input_files([str(report), str(deck)])
    page.wait_for_timeout(500)
    page.locator("#upload-button").click()
    page.locator("#upload-result").get_by_text("Indexed 2 document").wait_for(timeout=90_000)

    ask_documents(page, "default", "How often do maintenance crews replace the Kestrel gearbox oil?")
    evidence = page.locator("#evidence")
    evidence.get_by_text("turbine-report.docx, section 1.1 Maintenance").first.wait_for(timeout=20_000)
    evidence.locator("label").filter(has_text="turbine-report.docx").first.click()
    view = page.locator("#section-view")
    view.wait_for(timeout=20_000)
    assert "section 1.1 Maintenance" in view.inner_text()
    assert "ninety days" in view.locator("mark#cited").inner_text()
    assert page.locator("#page-image").count() == 0  # no page to draw: the section instead

    ask_documents(page, "default", "What does the Osprey roadmap add in the autumn release?")
    evidence.get_by_text("osprey-deck.pptx, slide 2").first.wait_for(timeout=20_000)
    evidence.locator("label").filter(has_text="osprey-deck.pptx, slide 2").first.click()
    page.wait_for_function("document.querySelector('#section-view')?.innerText.includes('slide 2')", timeout=20_000)
    assert "offline sync" in page.locator("#section-view mark#cited").inner_text()
    # The section opens in a tab of its own too: escaped text, no script allowed, scrolled to the sentence.
    href = page.locator("#section-link").get_attribute("href")
    assert href.endswith("#cited")
    opened = page.request.get(live_server + "/" + href.split("#")[0])
    assert opened.status == 200 and "script-src" not in opened.headers["content-security-policy"]
    assert "default-src 'none'" in opened.headers["content-security-policy"]
    assert f'<mark id="cited">{PPTX_PHRASES[1][0]}' in opened.text() or "offline sync" in opened.text()
    assert DOCX_PHRASES[0][0] not in opened.text()  # another document's text never leaks in
    page.close()


def test_a_compound_question_and_its_follow_up_get_quoted_cited_answers(browser, live_server, tmp_path):
    """The question a newcomer asks first, spelled as people type it ("BERT-large", the PDF says
    "BERTLARGE"), then a follow-up that only says "it": both answers open with the sources' own
    sentence, quoted with its [n] and page; after a reload the chat is on the collection last used."""
    from tests.pdfgen import make_pdf

    pdf = make_pdf(
        tmp_path / "model-card.pdf",
        [
            "Model card. Section 1: the small model. BERTBASE has 12 layers and 110M parameters in total.",
            "Section 2: the large model. BERTLARGE has 340M parameters in total and a hidden size of 1024.\n"
            "Training BERTLARGE took four days on sixteen Cloud TPUs.",
        ],
    )
    page = browser.new_page(viewport={"width": 1280, "height": 1200})
    open_app(page, live_server)
    upload_and_index(page, pdf)
    first = ask_documents(page, "default", "How big is BERT-large?")
    opening = first.lstrip().split("\n")[0]
    assert opening.startswith("“") and "BERTLARGE has 340M parameters" in opening, first
    assert "— model-card.pdf, p. 2" in opening and "[1]" in opening and "Sources:" in first
    page.locator("#message textarea").fill("And how long did it take to train it?")
    page.keyboard.press("Enter")
    bot_messages(page).nth(1).get_by_text("Sources:").wait_for(timeout=90_000)
    second = bot_messages(page).nth(1).inner_text()
    assert second.lstrip().startswith("“"), second
    assert "four days" in second.split("Sources:")[0] and "model-card.pdf, p. 2" in second
    # "it" is what the first answer quoted: the status line says the follow-up was kept to it
    page.locator("#chat-stats").get_by_text("previous answer's model-card.pdf").wait_for(timeout=30_000)
    # "[not in the sources]" is never repeated: an unsupported sentence is left out, counted once
    assert first.count("not in the sources") <= 1 and second.count("not in the sources") <= 1
    page.screenshot(path=str(tmp_path / "follow-up.png"), full_page=True)
    page.reload()
    wait_until_loaded(page)
    page.wait_for_function("document.querySelector('#collection-picker input')?.value === 'default'", timeout=20_000)
    assert page.locator("#no-documents-badge").inner_text().strip() == ""
    page.close()


# The words of an element that the browser broke across two lines ("hard-" / "ware" without a hyphen).
WORDS_BROKEN_ACROSS_LINES = """(cell) => {
  const broken = [];
  const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    for (const m of node.data.matchAll(/\\S+/g)) {
      const range = document.createRange();
      range.setStart(node, m.index);
      range.setEnd(node, m.index + m[0].length);
      if (new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size > 1) broken.push(m[0]);
    }
  }
  return broken;
}"""


def test_a_chat_scoped_to_picked_documents_summarises_and_compares_them(browser, live_server, tmp_path):
    """Issue 26 in the browser: pick one document beside the collection, ask for its summary (its
    own sentences, each cited by page, from that document only); add a second and ask to compare
    them (a table with a column per document, each cell cited)."""
    from tests.pdfgen import make_pdf, topic_pdf
    from tests.test_document_scope import GLACIER_PAGES

    glacier = make_pdf(tmp_path / "glacier-survey.pdf", GLACIER_PAGES, title="Glacier report")
    volcano = topic_pdf(tmp_path / "volcano-survey.pdf", "volcano", pages=2)
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    open_app(page, live_server)
    upload_and_index(page, glacier)
    upload_and_index(page, volcano)
    page.get_by_role("tab", name="Chat").click()
    pick(page, "collection-picker", "default")
    pick(page, "document-picker", "glacier-survey.pdf")
    page.keyboard.press("Escape")
    page.locator("#message textarea").fill("Summarize this document")
    page.locator("#send").click()
    bot = bot_messages(page).last
    bot.get_by_text("Sources:").wait_for(timeout=90_000)
    summary = bot.inner_text()
    assert "Summary of Glacier Report: Ice Loss in the Alps" in summary, summary
    assert "[1] — p. 1" in summary and "Results" in summary
    cited = summary.split("Sources:")[1]
    assert "glacier-survey.pdf" in cited and "volcano-survey.pdf" not in cited and "model-card" not in cited
    pick(page, "document-picker", "volcano-survey.pdf")
    page.keyboard.press("Escape")
    chips = page.locator("#document-picker .token")
    page.wait_for_function("document.querySelectorAll('#document-picker .token').length === 2", timeout=10_000)
    assert set(chips.all_inner_texts()) == {"glacier-survey.pdf", "volcano-survey.pdf"}, chips.all_inner_texts()
    page.locator("#message textarea").fill("Compare the two documents on temperature and pressure")
    page.locator("#send").click()
    table = page.locator("#chatbot table").last
    table.wait_for(timeout=90_000)
    bot_messages(page).last.get_by_text("Sources:").wait_for(timeout=90_000)
    headers = table.locator("th").all_inner_texts()
    assert "glacier-survey.pdf" in headers and "volcano-survey.pdf" in headers, bot_messages(page).last.inner_text()
    cells = " ".join(table.locator("td").all_inner_texts())
    assert "[1]" in cells and "[2]" in cells and "p. " in cells
    # the aspect's column is not squeezed beside the long quoted cells until its words break mid-word
    assert table.locator("td").first.evaluate(WORDS_BROKEN_ACROSS_LINES) == [], table.locator("td").first.inner_text()
    # on a phone the table scrolls sideways inside its message rather than running past the edge
    page.set_viewport_size({"width": 400, "height": 900})
    page.wait_for_timeout(300)
    inside = table.evaluate(
        "(t) => t.getBoundingClientRect().right <= t.closest('.message-content').getBoundingClientRect().right + 1"
    )
    assert inside, table.bounding_box()
    page.screenshot(path=str(tmp_path / "scoped.png"), full_page=True)
    page.close()


def test_the_first_run_leads_from_the_empty_chat_to_upload_and_back_to_a_cited_answer(browser, registry_dir, tmp_path):
    """A newcomer on a fresh data folder: the Chat tab says what to do and leads to Upload; the
    upload (no collection chosen) leads back to Chat on its collection; the first question gets a
    quoted, cited answer. Mouse only, as a person would."""
    from tests.conftest import running_app
    from tests.pdfgen import topic_pdf

    pdf = topic_pdf(tmp_path / "bee-notes.pdf", "bees", pages=2)
    with running_app(registry_dir, tmp_path / "data") as base:
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        open_app(page, base, new_conversation=False)
        empty = page.locator("#chat-empty-state")
        empty.get_by_text("Nothing to ask about yet").wait_for(timeout=20_000)
        page.locator("#go-to-upload").click()
        page.locator("#upload-files input[type=file]").set_input_files(str(pdf))
        page.wait_for_timeout(500)
        page.locator("#upload-button").click()
        page.locator("#upload-result").get_by_text("Indexed 1 document").wait_for(timeout=90_000)
        ask = page.locator("#ask-about-collection")
        assert ask.inner_text().strip() == "Ask about default →"
        ask.click()
        page.wait_for_function(
            "document.querySelector('#collection-picker input')?.value === 'default'", timeout=20_000
        )
        assert page.locator("#chat-empty-state").inner_text().strip() == ""
        page.locator("#message textarea").fill("How do honey bees tell each other where flowers are?")
        page.keyboard.press("Enter")
        bot = bot_messages(page).last
        bot.get_by_text("Sources:").wait_for(timeout=90_000)
        answer = bot.inner_text()
        assert answer.lstrip().startswith("“") and "bee-notes.pdf, p." in answer, answer
        page.screenshot(path=str(tmp_path / "first-run.png"), full_page=True)
        page.close()


def test_on_a_400_px_screen_the_message_box_and_the_answer_are_on_screen(browser, live_server, tmp_path):
    """At 400 x 800 (a phone, a narrow window) the conversation and the message box come first:
    after asking, the box, Send and the answer are all within the first screen, no scrolling."""
    from tests.pdfgen import topic_pdf

    wide = browser.new_page(viewport={"width": 1280, "height": 1000})
    open_app(wide, live_server)
    upload_and_index(wide, topic_pdf(tmp_path / "coffee-narrow.pdf", "coffee", pages=1))
    wide.close()
    page = browser.new_page(viewport={"width": 400, "height": 800})
    open_app(page, live_server)
    pick(page, "collection-picker", "default")
    page.locator("#message textarea").fill("At what pressure is espresso brewed?")
    page.keyboard.press("Enter")
    bot_messages(page).last.get_by_text("Sources:").wait_for(timeout=90_000)
    page.evaluate("window.scrollTo(0, 0)")
    box = page.locator("#message textarea").bounding_box()
    send = page.locator("#send").bounding_box()
    answer = bot_messages(page).last.bounding_box()
    assert box and send and answer
    assert box["y"] + box["height"] <= 800 and send["y"] + send["height"] <= 800, (box, send)
    assert answer["y"] < 800 and answer["y"] + answer["height"] > 0, answer
    page.screenshot(path=str(tmp_path / "narrow.png"))
    page.close()


def test_send_and_stop_are_enabled_only_when_they_do_something(browser, live_server):
    """Idle: Send on, Stop off. While an answer is written: Send off, Stop on. Stop ends the answer
    and both come back; an answer that ends by itself brings them back too."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    open_app(page, live_server)
    pick(page, "collection-picker", "(none: chat without documents)")
    send, stop = page.locator("#send"), page.locator("#stop")
    assert send.is_enabled() and stop.is_disabled()
    page.locator("#message textarea").fill("Write a long story about a dragon who learns to bake bread.")
    send.click()
    page.wait_for_function(
        "document.querySelector('#send').disabled && !document.querySelector('#stop').disabled", timeout=30_000
    )
    try:
        stop.click(timeout=3_000)
    except PlaywrightTimeout:  # the answer ended on its own first (96 tokens at most here)
        pass
    page.wait_for_function(
        "!document.querySelector('#send').disabled && document.querySelector('#stop').disabled", timeout=30_000
    )
    page.locator("#message textarea").fill("Say hello.")
    send.click()
    page.locator("#chat-stats").get_by_text("tok/s").wait_for(timeout=90_000)
    page.wait_for_function(
        "!document.querySelector('#send').disabled && document.querySelector('#stop').disabled", timeout=30_000
    )
    page.close()


RECORD_STATUSES = """() => {
  window.__statuses = [];
  const box = document.querySelector('#chat-stats');
  const note = () => {
    const prose = box.querySelector('.prose, [data-testid="markdown"]') || box;
    const text = prose.innerText.trim();
    if (text !== window.__statuses[window.__statuses.length - 1]) window.__statuses.push(text);
  };
  new MutationObserver(note).observe(box, {subtree: true, childList: true, characterData: true});
}"""
STAGES = ("Searching the documents…", "Answering…", "Checking the answer against the sources…")


def test_the_status_follows_the_answer_searching_answering_checking(browser, live_server, tmp_path):
    """One question in the "quotes + a short answer" mode: the status line under the answer says
    what is happening, in order (searching the documents, the model answering, its sentences
    checked against the sources), and gives way to the answer's figures at the end."""
    from tests.pdfgen import topic_pdf

    page = browser.new_page(viewport={"width": 1280, "height": 1100})
    open_app(page, live_server)
    upload_and_index(page, topic_pdf(tmp_path / "espresso-stages.pdf", "coffee", pages=1, marker="Stages copy."))
    page.get_by_role("tab", name="Chat").click()
    pick(page, "collection-picker", "default")
    page.get_by_text("Generation settings").click()
    page.get_by_label("Quotes + a short answer, only what the sources support").check()
    page.evaluate(RECORD_STATUSES)
    page.locator("#message textarea").fill("At what pressure is espresso brewed?")
    page.keyboard.press("Enter")
    bot_messages(page).last.get_by_text("Sources:").wait_for(timeout=90_000)
    page.wait_for_function("!document.querySelector('#send').disabled", timeout=60_000)
    seen = [s for s in page.evaluate("window.__statuses") if s]
    stages = [s for s in seen if s in STAGES]
    first = [stages.index(s) for s in STAGES if s in stages]
    assert len(first) == 3 and first == sorted(first), seen  # each stage shown, in this order
    assert stages[0] == STAGES[0] and seen[-1] not in STAGES, seen  # then the answer's own line
    page.close()


RECORD_ANNOUNCEMENTS = """() => {
  window.__raw = [];  // any text or aria-label that shows a translation key such as "common.complete"
  window.__said = [];  // what the live regions (what a screen reader announces) were given to say
  const raw = (text) => { if (/\\bcommon\\./.test(text || '')) window.__raw.push(text.slice(0, 200)); };
  const labels = (el) => { raw(el.getAttribute('aria-label')); el.querySelectorAll('[aria-label]').forEach((e) => raw(e.getAttribute('aria-label'))); };
  new MutationObserver((records) => {
    for (const r of records) {
      if (r.type === 'attributes') { raw(r.target.getAttribute('aria-label')); continue; }
      const nodes = r.type === 'characterData' ? [r.target] : Array.from(r.addedNodes);
      for (const n of nodes) {
        raw(n.textContent);
        if (n.nodeType === 1) labels(n);
        const live = (n.nodeType === 3 ? n.parentElement : n)?.closest('[aria-live]');
        if (live && live.textContent.trim()) window.__said.push(live.textContent.trim());
      }
    }
  }).observe(document.body, {childList: true, subtree: true, characterData: true, attributes: true, attributeFilter: ['aria-label']});
}"""


def test_screen_readers_hear_words_not_translation_keys(browser, live_server, tmp_path):
    """Gradio announces each finished step in a polite live region; after an indexing run and after
    an answer it says "Done", and no text or aria-label on the page ever shows a raw key such as
    "common.complete" (what a screen reader read aloud before)."""
    from tests.pdfgen import topic_pdf

    page = browser.new_page(viewport={"width": 1280, "height": 1100})
    open_app(page, live_server)
    page.evaluate(RECORD_ANNOUNCEMENTS)
    upload_and_index(page, topic_pdf(tmp_path / "railway-announce.pdf", "railway", pages=1))
    # announcements are spaced at least 5 s apart: the last one comes a few seconds after the step
    page.wait_for_function("window.__said.includes('Done')", timeout=20_000)
    said = len(page.evaluate("window.__said"))
    ask_documents(page, "default", "How long is the Trans-Siberian Railway?")
    page.wait_for_function(f"window.__said.slice({said}).includes('Done')", timeout=20_000)
    assert page.evaluate("window.__raw") == []
    shown = page.evaluate(
        "() => Array.from(document.body.querySelectorAll(':not(script):not(style)')).flatMap(e => [e.getAttribute('aria-label') || '',"
        " Array.from(e.childNodes).filter(n => n.nodeType === 3).map(n => n.data).join(' ')])"
        ".filter(t => /\\bcommon\\./.test(t))"
    )
    assert shown == [], shown
    page.close()


def test_on_a_wide_screen_the_evidence_sits_beside_the_answer(browser, live_server, tmp_path):
    """At 1400 px the evidence list is to the right of the conversation, level with it (kotaemon's
    layout), so the page of a citation opens without losing the answer; the page image opens full
    size in a tab of its own (zoom)."""
    from tests.pdfgen import topic_pdf

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    open_app(page, live_server)
    upload_and_index(page, topic_pdf(tmp_path / "railway-wide.pdf", "railway", pages=1, marker="Wide copy."))
    ask_documents(page, "default", "How long is the Trans-Siberian Railway?")
    chat = page.locator("#chatbot").bounding_box()
    evidence = page.locator("#evidence").bounding_box()
    assert chat and evidence
    assert evidence["x"] >= chat["x"] + chat["width"] - 1, (chat, evidence)  # to the right
    assert evidence["y"] < chat["y"] + chat["height"], (chat, evidence)  # level with it, not below
    page.locator("#evidence label").first.click()
    page.wait_for_function("document.querySelector('#page-image')?.naturalWidth > 400", timeout=30_000)
    link = page.locator("#page-image-full")
    assert link.get_attribute("target") == "_blank" and link.get_attribute("href").startswith("documents/")
    page.close()
