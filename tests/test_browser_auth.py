"""Sign-in, roles, conversations and collections in a real browser (chromium via Playwright),
against a real `python -m webapp serve --auth password`, with keyboard and mouse as a person uses them."""

from __future__ import annotations

import pytest

from tests.conftest import running_app
from tests.pdfgen import make_pdf
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, bot_messages, pick, wait_until_loaded

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORDS = {"ada": "ada-admin-pass", "bob": "bob-member-pass", "vic": "vic-viewer-pass"}
ROLES = {"ada": "admin", "bob": "member", "vic": "viewer"}


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def server(registry_dir, tmp_path_factory):
    from webapp.auth.users import UserStore

    data = tmp_path_factory.mktemp("browser-auth-data")
    store = UserStore(data)
    for name, role in ROLES.items():
        store.add(name, role, PASSWORDS[name])
    store.close()
    with running_app(
        registry_dir, data, extra_env={"DOCCHAT_AUTH": "password", "DOCCHAT_MAX_NEW_TOKENS": "24"}
    ) as base:
        yield base


def sign_in(browser, base: str, name: str, password: str | None = None):
    """A fresh browser context (its own cookies), signed in with the keyboard."""
    context = browser.new_context(viewport={"width": 1300, "height": 1000})
    page = context.new_page()
    page.goto(base + "/", wait_until="domcontentloaded")
    assert "/auth/login" in page.url
    wait_for_name_focus(page)
    page.keyboard.type(name)  # the name field has the focus
    page.keyboard.press("Tab")
    page.keyboard.type(password or PASSWORDS[name])
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: "/auth/login" not in url, timeout=30_000)
    page.locator("#chatbot").wait_for(timeout=30_000)
    wait_until_loaded(page)
    return page


def wait_for_name_focus(page) -> None:
    """The sign-in page puts the cursor in the name field (autofocus), as a person would see."""
    page.wait_for_function("document.activeElement && document.activeElement.id === 'username'", timeout=30_000)


def visible_tabs(page) -> list[str]:
    return [t.inner_text().strip() for t in page.get_by_role("tab").all() if t.is_visible()]


def test_sign_in_with_the_keyboard_roles_shape_the_page_and_sign_out(browser, server):
    context = browser.new_context()
    page = context.new_page()
    page.goto(server + "/", wait_until="domcontentloaded")
    wait_for_name_focus(page)
    page.keyboard.type("vic")
    page.keyboard.press("Tab")
    page.keyboard.type("wrong password")
    page.keyboard.press("Enter")
    page.get_by_text("Wrong user name or password").wait_for(timeout=30_000)
    context.close()

    expected = {
        "vic": ["Chat", "Documents"],
        "bob": ["Chat", "Upload", "Documents"],
        "ada": ["Chat", "Upload", "Documents", "Compare", "Users"],
    }
    for name, tabs in expected.items():
        page = sign_in(browser, server, name)
        banner = page.locator("#user-banner").inner_text()
        assert f"Signed in as {name} ({ROLES[name]})" in banner
        page.wait_for_timeout(500)
        assert visible_tabs(page) == tabs, (name, visible_tabs(page))
        page.locator("#sign-out").click()
        page.locator("#username").wait_for(timeout=30_000)
        # Back returns to the sign-in page, not to a stored copy of the app whose calls all fail
        # (pages are sent with Cache-Control: no-store)
        page.go_back(wait_until="domcontentloaded")
        page.locator("#username").wait_for(timeout=30_000)
        assert "/auth/login" in page.url and page.get_by_text("Error").count() == 0
        page.goto(server + "/", wait_until="domcontentloaded")
        assert "/auth/login" in page.url  # signed out for real, not just a page change
        page.context.close()


def test_conversations_survive_a_reload_and_a_second_browser(browser, server):
    page = sign_in(browser, server, "bob")
    page.locator("#new-chat").click()
    page.locator("#message textarea").click()
    page.keyboard.type("Name one planet of the solar system.")
    page.keyboard.press("Enter")
    page.locator("#chat-stats").get_by_text("tok/s").wait_for(timeout=60_000)
    answer = bot_messages(page).last.inner_text().strip()
    assert answer
    conversations = page.locator("#conversations")
    conversations.get_by_text("Name one planet of the solar system.").wait_for(timeout=30_000)

    page.reload(wait_until="domcontentloaded")
    page.locator("#chatbot").wait_for(timeout=30_000)
    wait_until_loaded(page)
    page.locator("#chatbot").get_by_text("Name one planet of the solar system.").wait_for(timeout=30_000)
    assert bot_messages(page).last.inner_text().strip() == answer

    second = sign_in(browser, server, "bob")  # another browser: its own cookies, same user
    second.locator("#chatbot").get_by_text("Name one planet of the solar system.").wait_for(timeout=30_000)
    assert bot_messages(second).last.inner_text().strip() == answer
    second.context.close()

    other = sign_in(browser, server, "vic")  # nothing of bob's is on vic's page
    assert "Name one planet" not in other.locator("#conversations").inner_text()
    assert "Name one planet" not in other.locator("#chatbot").inner_text()
    other.context.close()

    page.get_by_text("Rename, export, delete").click()
    title = page.locator("#conversation-title input, #conversation-title textarea").first
    title.fill("Planets")
    page.locator("#conversation-rename").click()
    conversations.get_by_text("Planets", exact=True).wait_for(timeout=30_000)
    page.locator("#conversation-delete").click()
    page.locator("#conversation-delete-yes").click()
    page.wait_for_function("!document.querySelector('#conversations').innerText.includes('Planets')", timeout=30_000)
    assert bot_messages(page).count() == 0
    page.context.close()


def test_collections_and_documents_from_the_table(browser, server, tmp_path):
    pdf = make_pdf(tmp_path / "orbit-notes.pdf", ["Orbit notes. Mars takes 687 Earth days to orbit the Sun."])
    page = sign_in(browser, server, "bob")
    page.get_by_role("tab", name="Upload").click()
    page.get_by_text("New collection", exact=True).click()
    page.locator("#new-collection-name input, #new-collection-name textarea").first.fill("bob-papers")
    page.locator("#create-collection").click()
    page.locator("#upload-result").get_by_text("is ready").wait_for(timeout=30_000)
    assert page.locator("#upload-collection input").input_value() == "bob-papers"
    page.locator("#upload-files input[type=file]").set_input_files(str(pdf))
    page.wait_for_timeout(500)
    page.locator("#upload-button").click()
    page.locator("#upload-result").get_by_text("Indexed 1 document").wait_for(timeout=90_000)

    # The new collection is in the Chat tab's picker without pressing anything.
    page.get_by_role("tab", name="Chat").click()
    page.locator("#collection-picker input").click()
    page.get_by_role("option", name="bob-papers", exact=True).wait_for(timeout=30_000)
    page.keyboard.press("Escape")

    # Documents: choose a row with the mouse, delete it after a confirmation.
    page.get_by_role("tab", name="Documents").click()
    pick(page, "index-collection", "bob-papers")
    table = page.locator("#documents-table")
    table.get_by_test_id("cell-0-1").get_by_text("orbit-notes.pdf").wait_for(timeout=30_000)
    assert "indexed" in table.inner_text()
    table.get_by_test_id("cell-0-1").click()
    page.locator("#selected-document-note").get_by_text("orbit-notes.pdf").wait_for(timeout=30_000)
    page.locator("#delete-document").click()
    page.locator("#delete-confirm-text").get_by_text("cannot be undone").wait_for(timeout=30_000)
    page.locator("#delete-cancel").click()
    assert "orbit-notes.pdf" in table.inner_text()
    page.locator("#delete-document").click()
    page.locator("#delete-confirm").click()
    page.locator("#index-result").get_by_text("Deleted").wait_for(timeout=30_000)
    page.wait_for_function(
        "!document.querySelector('#documents-table').innerText.includes('orbit-notes.pdf')", timeout=30_000
    )

    viewer = sign_in(browser, server, "vic")  # bob's private collection is not offered to vic
    viewer.locator("#collection-picker input").click()
    viewer.get_by_role("option", name="default", exact=True).wait_for(timeout=30_000)
    assert viewer.get_by_role("option", name="bob-papers", exact=True).count() == 0
    viewer.context.close()
    page.context.close()


@pytest.mark.parametrize("width", [1400, 400])
def test_every_tab_has_no_serious_accessibility_violation_for_any_role(browser, server, width):
    """axe-core over every tab each role sees, wide and narrow (WCAG 2.1 AA: contrast, names,
    ARIA): no violation of impact serious or critical. Before the theme fix (webapp/ui/look.py):
    white on orange buttons 2.8:1, subdued text 1.9:1, an upload area named unlike its text, ARIA
    labels on bare divs."""
    from tests.axe import violations, violations_per_tab

    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.goto(server + "/", wait_until="domcontentloaded")
    wait_for_name_focus(page)
    report = {"sign-in page": violations(page)}
    context.close()
    for role, name in ((r, n) for n, r in ROLES.items()):
        page = sign_in(browser, server, name)
        page.set_viewport_size({"width": width, "height": 900})
        seen = violations_per_tab(page)
        assert "Chat" in seen and ("Upload" in seen) == (role != "viewer")  # the walk reached the tabs
        report.update({f"{role} / {tab}": found for tab, found in seen.items()})
        page.context.close()
    bad = {where: found for where, found in report.items() if found}
    assert not bad, bad


def test_a_member_uploads_into_a_private_collection_of_their_own(browser, server, tmp_path):
    """A member uploads without choosing a collection: the picker starts on one of their own (or is
    empty, and a private collection of theirs is made on the spot - it was "There is no collection
    named ''" and the file was lost); "Ask about ..." leads to Chat on it; the viewer does not see
    it. (Made on the spot: tests/test_documents.py::test_an_upload_naming_no_collection_...)"""
    import re

    from tests.pdfgen import topic_pdf

    pdf = topic_pdf(tmp_path / "railway-notes.pdf", "railway", pages=2)
    page = sign_in(browser, server, "bob")
    page.get_by_role("tab", name="Upload").click()
    start = page.locator("#upload-collection input").input_value()
    assert start == "" or start.startswith("bob"), start  # never the shared default
    page.locator("#upload-files input[type=file]").set_input_files(str(pdf))
    page.wait_for_timeout(500)
    page.locator("#upload-button").click()
    result = page.locator("#upload-result")
    result.get_by_text("Indexed 1 document").wait_for(timeout=90_000)
    text = result.inner_text()
    assert "refused" not in text and "no collection" not in text, text
    name = re.search(r"Into your private collection (\S+):", text) or re.search(r"Ask about (\S+) →", text)
    ask = page.locator("#ask-about-collection")
    collection = ask.inner_text().strip().removeprefix("Ask about ").removesuffix(" →")
    assert collection.startswith("bob") and (name is None or name.group(1) == collection), text
    ask.click()
    page.wait_for_function(
        f"document.querySelector('#collection-picker input')?.value === {collection!r}", timeout=20_000
    )
    page.locator("#message textarea").fill("How long is the Trans-Siberian Railway?")
    page.keyboard.press("Enter")
    bot = page.locator("#chatbot .message-row.bot-row, #chatbot [data-testid='bot']").last
    bot.get_by_text("Sources:").wait_for(timeout=90_000)
    assert "railway-notes.pdf, p." in bot.inner_text()
    page.context.close()
    viewer = sign_in(browser, server, "vic")
    viewer.locator("#collection-picker input").click()
    options = viewer.get_by_role("option").all_inner_texts()
    assert collection not in options, options
    viewer.context.close()


def test_actions_a_member_may_not_take_are_hidden_with_the_reason(browser, server, tmp_path):
    """In a collection that is read-only for a member, the index/delete buttons and the sharing
    controls are not offered (they used to fail after the click); the note says why. In the
    member's own collection they are."""
    admin = sign_in(browser, server, "ada")
    admin.get_by_role("tab", name="Upload").click()
    admin.locator("#new-collection").get_by_text("New collection").click()
    admin.locator("#new-collection-name input, #new-collection-name textarea").first.fill("team-shelf")
    admin.get_by_label("Everyone signed in").check()
    admin.locator("#create-collection").click()
    admin.locator("#upload-result").get_by_text("is ready").wait_for(timeout=30_000)
    admin.context.close()

    page = sign_in(browser, server, "bob")
    page.get_by_role("tab", name="Documents").click()
    page.locator("#index-collection input").click()
    page.get_by_role("option").first.wait_for(timeout=10_000)
    options = page.get_by_role("option").all_inner_texts()
    assert "team-shelf" in options, options  # readable by everyone signed in, managed by the admins
    page.get_by_role("option", name="team-shelf", exact=True).click()
    page.locator("#sharing-note").get_by_text("read only for you").wait_for(timeout=10_000)
    assert not page.locator("#index-button").is_visible() and not page.locator("#delete-document").is_visible()
    own = [o for o in options if o.startswith("bob")]
    if own:
        page.locator("#index-collection input").click()
        page.get_by_role("option", name=own[0], exact=True).first.click()
        page.locator("#sharing-note").get_by_text("you can manage its documents").wait_for(timeout=10_000)
        assert page.locator("#index-button").is_visible() and page.locator("#delete-document").is_visible()
    page.context.close()


def test_an_export_goes_away_with_its_conversation(browser, server):
    """The Markdown export of one conversation is not left on screen when another one is opened."""
    page = sign_in(browser, server, "bob")
    page.locator("#new-chat").click()
    page.locator("#message textarea").fill("Say hello in one word.")
    page.keyboard.press("Enter")
    # answered (from the documents or by the model, whichever this user's picker is on): Send is back
    page.wait_for_function(
        "document.querySelector('#stop').disabled && !document.querySelector('#send').disabled "
        "&& document.querySelectorAll('#chatbot .message-row.bot-row, #chatbot [data-testid=bot]').length > 0",
        timeout=90_000,
    )
    page.get_by_text("Rename, export, delete").click()
    page.locator("#conversation-export").click()
    page.locator("#conversation-file").get_by_text(".md").first.wait_for(timeout=30_000)
    page.locator("#new-chat").click()
    page.wait_for_function(
        "!(document.querySelector('#conversation-file')?.innerText || '').includes('.md')", timeout=15_000
    )
    page.context.close()
