"""How the page looks: Gradio's default theme with colours that meet WCAG 2.1 AA contrast, and
small repairs of Gradio's own markup that accessibility checkers (axe-core) and screen readers trip on.

Gradio's default orange (#f97316) under white button text is 2.8:1 and its subdued grey (#bbbbc2)
1.9:1; AA asks 4.5:1 for text. The primary hue is shifted two shades darker (orange-700 #c2410c
under white: 5.2:1), the stop buttons use red-700, and subdued text, placeholders and labels use
darker greys. tests/test_browser.py runs axe-core over every tab at 1400 and 400 px.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

_O = gr.themes.colors.orange
# orange, two shades darker: the accent (c500) becomes orange-700
_DARK_ORANGE = gr.themes.Color(
    c50=_O.c100,
    c100=_O.c200,
    c200=_O.c300,
    c300=_O.c400,
    c400=_O.c600,
    c500=_O.c700,
    c600=_O.c800,
    c700=_O.c900,
    c800=_O.c950,
    c900=_O.c950,
    c950=_O.c950,
    name="dark-orange",
)

THEME = gr.themes.Default(primary_hue=_DARK_ORANGE).set(
    button_cancel_background_fill="#b91c1c",  # red-700 under white: 6.5:1
    button_cancel_background_fill_hover="#991b1b",
    button_cancel_background_fill_dark="#b91c1c",
    body_text_color_subdued="*neutral_600",
    input_placeholder_color="*neutral_500",
    block_label_text_color="*neutral_700",
    block_info_text_color="*neutral_600",
)

CSS = """
#message-hint { font-size: 0.85em; color: #4b5563; margin-top: -0.5em; }
/* Tables in answers (a comparison: aspect | one column per document): Gradio lets a cell break
   inside any word, so the browser squeezes the short aspect column beside long quoted cells until
   "training hardware" reads "traini / ng / har / dw / are". Words break only when one is wider than
   the whole table could ever make room for (tests/test_browser.py checks the comparison). */
#chatbot table td, #chatbot table th { word-break: normal; overflow-wrap: break-word; }
#chatbot table td:first-child { min-width: 6em; }
/* Narrow screens (a phone, a 400 px window): the conversation and the message box first, the list
   of conversations after them, a shorter title and chat area, so that the box and the start of the
   answer are on screen without scrolling (tests/test_browser.py checks 400 x 800). */
@media (max-width: 640px) {
  #chat-main { order: 1; }
  #conversation-sidebar { order: 2; }
  h2 { font-size: 1em !important; margin: 0 !important; }
  #chatbot { height: 250px !important; max-height: 250px !important; }
  #chat-refresh { display: none; }
  #message-hint { display: none; }
  /* a table wider than the message scrolls sideways inside it rather than running past its edge */
  #chatbot table { display: block; max-width: 100%; overflow-x: auto; }
}
"""

# Gradio's upload area names itself "Click to upload or drop files" while it shows "Drop File
# Here - or - Click to Upload" (a screen reader and a voice user disagree on its name), and its
# empty plots put aria-label on a bare div. Both are repaired as they appear.
# Gradio 6.31 also announces every finished event in a polite live region as "common.complete"
# (its English table has "complete" under "chatbot", not "common"), so screen readers read the
# raw key aloud; a translation key left raw in a live region or an aria-label is put into words
# as it appears ("common.complete" -> "Done"), before the reader hears it.
HEAD = """
<script>
(() => {
  const repair = (root) => {
    root.querySelectorAll('.upload-container[aria-label]:not([role="none"])').forEach((el) => {
      const seen = (el.innerText || '').replace(/\\s+/g, ' ').trim();
      if (seen && el.getAttribute('aria-label') !== seen) el.setAttribute('aria-label', seen);
    });
    root.querySelectorAll('div.empty[aria-label]:not([role])').forEach((el) => el.setAttribute('role', 'img'));
  };
  const RAW_KEY = /^\\s*(?:common|status|chatbot|errors|upload_text|blocks|dataframe|file|plot)\\.([a-z_]+)\\s*$/;
  const WORDS = {complete: 'Done'};
  const words = (m) => WORDS[m[1]] || m[1].charAt(0).toUpperCase() + m[1].slice(1).replace(/_/g, ' ');
  const unkeyText = (node) => {
    const m = node.nodeType === 3 && RAW_KEY.exec(node.data);
    if (m && node.parentElement && node.parentElement.closest('[aria-live]')) node.data = words(m);
  };
  const unkeyLabel = (el) => {
    const m = el.getAttribute && RAW_KEY.exec(el.getAttribute('aria-label') || '');
    if (m) el.setAttribute('aria-label', words(m));
  };
  const unkey = (records) => {
    for (const r of records) {
      if (r.type === 'characterData') unkeyText(r.target);
      else if (r.type === 'attributes') unkeyLabel(r.target);
      else r.addedNodes.forEach((n) => {
        if (n.nodeType === 3) { unkeyText(n); return; }
        if (n.nodeType !== 1) return;
        unkeyLabel(n);
        n.querySelectorAll('[aria-label]').forEach(unkeyLabel);
        if (n.closest('[aria-live]')) n.querySelectorAll('*').forEach((el) => el.childNodes.forEach(unkeyText));
        n.childNodes.forEach(unkeyText);
      });
    }
  };
  const start = () => {
    repair(document);
    new MutationObserver(() => repair(document)).observe(document.body, {childList: true, subtree: true});
    new MutationObserver(unkey).observe(document.body, {
      childList: true, subtree: true, characterData: true, attributes: true, attributeFilter: ['aria-label'],
    });
  };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start); else start();
})();
</script>
"""


def page_style() -> dict[str, Any]:
    """What gr.mount_gradio_app takes for the page's look (Gradio 6 sets it there, not on Blocks)."""
    return {"theme": THEME, "css": CSS, "head": HEAD}
