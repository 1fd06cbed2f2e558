"""The extractive summary's selection (webapp/rag/summaries.py) on small texts, no model: what it
recovers on real papers is measured by benchmarks/summary_eval.py, the product path by
tests/test_document_scope.py with the real embedder."""

import numpy as np

from webapp.rag.summaries import central, document_sentences


def test_in_running_prose_a_sentence_cut_at_a_break_is_left_out():
    prose = [
        (
            1,
            "Glaciers in the Alps have lost half of their volume since 1850. The loss has grown faster in the "
            "last two decades. We measured twelve glaciers with radar every autumn. The average thickness fell "
            "by one metre per year. We then plot the thickness of each glacier in Figure",
        ),
    ]
    texts = [e.text for e in document_sentences(prose)]
    assert len(texts) == 4 and not any(t.endswith("Figure") for t in texts)
    # slides and bullet lists mostly end without a full stop: there they are the text, and stay
    bullets = [
        (
            1,
            "• Revenue grew by twenty percent in the third quarter\n• Costs fell in every region of the "
            "company\n• The new product line sold out within two weeks",
        )
    ]
    assert len(document_sentences(bullets)) == 3


def test_footnotes_and_sentences_with_a_footnote_spliced_in_are_not_summary_sentences():
    """PDF reading order crosses the foot of a column: a footnote lands inside the running sentence
    ("... and introduce 2It is possible that ..."), or stands as a sentence of its own ("4We use
    jiant to compute ..."). Neither is the paper's text; names with digits ("Task2Vec") are."""
    page = (
        "In summary, the contributions of this paper are a set of important design choices and introduce "
        "2It is possible that these other methods could also improve with more tuning. "
        "4We use jiant to compute the scores on the development sets of each task. "
        "We train the model on sixteen gigabytes of English text for one million steps. "
        "Task2Vec embeddings predict which tasks are similar to each other across the whole benchmark. "
        "The sensor samples the signal at 50Hz and sends it over a 10Mbps link to the station."
    )
    texts = [e.text for e in document_sentences([(1, page)])]
    assert texts == [
        "We train the model on sixteen gigabytes of English text for one million steps.",
        "Task2Vec embeddings predict which tasks are similar to each other across the whole benchmark.",
        "The sensor samples the signal at 50Hz and sends it over a 10Mbps link to the station.",
    ], texts


def _bag_of_words(texts):
    """A stand-in embedder: one dimension per word, so likeness is shared wording."""
    vocab = sorted({w for t in texts for w in t.lower().split()})
    return np.asarray([[t.lower().split().count(w) for w in vocab] for t in texts], dtype=np.float32)


def test_the_summary_covers_the_documents_words_rather_than_repeating_itself():
    pages = [
        (
            1,
            "The radar survey measured glacier thickness across the alpine region every year. "
            "The radar survey measured glacier thickness across the alpine region each year. "
            "Warmer summers melted the glacier ice faster than the radar survey expected. "
            "Snowfall in winter did not replace the glacier ice lost in summer months.",
        )
    ]
    picked = [e.text for e in central(document_sentences(pages), _bag_of_words, n=2)]
    assert len(picked) == 2 and not all(p.startswith("The radar survey measured") for p in picked)
