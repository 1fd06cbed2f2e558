"""One spelling for text that PDFs store in presentation forms.

Typeset PDFs (LaTeX, Word) draw "fi", "fl", "ff", "ffi" as single ligature glyphs, and pypdf returns
them as the Unicode ligature characters: "classiﬁcation", "efﬁciency", "ﬁrst". Half of the chunks
of the arXiv corpus had one. To every matcher - the FTS5 keyword index (unicode61 does not
decompose them), the static embedder's WordPiece vocabulary, the evidence's word overlap - such a
word is a different word from the one the user types, so "classification" never matched
"classiﬁcation". Mathematical alphanumeric symbols (𝑥, 𝓁, 𝐖) get their plain letters for the same
reason. Nothing else is changed: quotes, dashes, Greek and accents carry meaning or are already
handled by the tokenizers.
"""

from __future__ import annotations

import re
import unicodedata

# Bump when normalize() changes what it produces: stores record the version their chunks were
# written with, and DocumentStore.mend_text brings older chunks up to date on open.
TEXT_VERSION = 2

_PRESENTATION = re.compile("[\ufb00-\ufb06\U0001d400-\U0001d7ff]")


def normalize(text: str) -> str:
    """``text`` with ligatures and mathematical letters spelled out (NFKC of just those)."""
    if not _PRESENTATION.search(text):
        return text
    return _PRESENTATION.sub(lambda m: unicodedata.normalize("NFKC", m.group(0)), text)
