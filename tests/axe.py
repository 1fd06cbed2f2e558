"""axe-core (the npm package, installed by scripts/install-test-system-deps.sh into .cache/axe)
injected into a Playwright page: the accessibility violations a checker finds, per tab."""

from __future__ import annotations

from pathlib import Path

import pytest

AXE_JS = Path(__file__).resolve().parent.parent / ".cache" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
SERIOUS = ("serious", "critical")

RUN = """async () => (await axe.run(document, {resultTypes: ['violations']})).violations.map(v => ({
  id: v.id, impact: v.impact, help: v.help,
  nodes: v.nodes.slice(0, 3).map(n => n.target.join(' ') + ' :: ' + (n.failureSummary || '').slice(0, 200))
}))"""


def violations(page) -> list[dict]:
    """The serious and critical violations on the page as it is now."""
    if not AXE_JS.is_file():
        pytest.fail(f"axe-core is not installed ({AXE_JS}); run scripts/install-test-system-deps.sh")
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE_JS))
    return [v for v in page.evaluate(RUN) if v["impact"] in SERIOUS]


def open_tab(page, name: str) -> bool:
    """Click the tab ``name`` as a person would (through the "More tabs" menu on a narrow screen);
    False when the page has no such tab for this user."""
    tab = page.get_by_role("tab", name=name, exact=True)
    if tab.count() and tab.first.is_visible():
        tab.first.click()
        return True
    more = page.locator('button[aria-label="More tabs"]')
    if not (more.count() and more.first.is_visible()):
        return False
    more.first.click()
    item = page.locator(".overflow-menu button", has_text=name)
    if not (item.count() and item.first.is_visible()):
        page.keyboard.press("Escape")
        return False
    item.first.click()
    return True


def violations_per_tab(page, tabs=("Chat", "Upload", "Documents", "Compare", "Users")) -> dict[str, list[dict]]:
    found = {}
    for name in tabs:
        if open_tab(page, name):
            page.wait_for_timeout(500)  # the tab's content is rendered when it is first shown
            found[name] = violations(page)
    return found
