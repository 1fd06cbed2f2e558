"""The extractive summary's selection (webapp/rag/summaries.py) on small texts, no model: what it
recovers on real papers is measured by benchmarks/summary_eval.py, the product path by
tests/test_document_scope.py with the real embedder."""

import numpy as np
import pytest

from webapp.rag.summaries import central, document_sentences, first_page_title


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


# First lines of real first pages (the arXiv papers of ../shared/corpus, as pypdf reads them): the
# title runs on to its next line when it stops mid-phrase, when the next line opens in lower case,
# or when both are in capitals; the author line after a whole title is never taken in.
FIRST_PAGES = [
    (
        [
            "BERT: Pre-training of Deep Bidirectional Transformers for",
            "Language Understanding",
            "Jacob Devlin Ming-Wei Chang",
        ],
        "BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding",
    ),
    (
        [
            "DetectGPT: Zero-Shot Machine-Generated Text Detection",
            "using Probability Curvature",
            "Eric Mitchell 1 Yoonho Lee 1",
        ],
        "DetectGPT: Zero-Shot Machine-Generated Text Detection using Probability Curvature",
    ),
    (
        [
            "Published as a conference paper at ICLR 2021",
            "MEASURING MASSIVE MULTITASK",
            "LANGUAGE UNDERSTANDING",
            "Dan Hendrycks",
        ],
        "MEASURING MASSIVE MULTITASK LANGUAGE UNDERSTANDING",
    ),
    (
        [
            "Red teaming ChatGPT via Jailbreaking:",
            "Bias, Robustness, Reliability and Toxicity",
            "Terry Yue Zhuo1,2§, Yujin Huang2",
        ],
        "Red teaming ChatGPT via Jailbreaking: Bias, Robustness, Reliability and Toxicity",
    ),
    (
        [
            "DistilBERT, a distilled version of BERT: smaller,",
            "faster, cheaper and lighter",
            "Victor SANH, Lysandre DEBUT",
        ],
        "DistilBERT, a distilled version of BERT: smaller, faster, cheaper and lighter",
    ),
    (
        ["LLaMA: Open and Efficient Foundation Language Models", "Hugo Touvron∗, Thibaut Lavril∗, Gautier Izacard∗"],
        "LLaMA: Open and Efficient Foundation Language Models",
    ),
    (
        [
            "arXiv:1907.11692v1 [cs.CL] 26 Jul 2019",
            "RoBERTa: A Robustly Optimized BERT Pretraining Approach",
            "Yinhan Liu∗§ Myle Ott∗§",
        ],
        "RoBERTa: A Robustly Optimized BERT Pretraining Approach",
    ),
    (
        ["TASK2VEC: Task Embedding for Meta-Learning", "Alessandro Achille", "UCLA and AWS"],
        "TASK2VEC: Task Embedding for Meta-Learning",
    ),
    (
        ["Glacier Report: Ice Loss in the Alps", "1 Introduction", "Alpine glaciers have lost"],
        "Glacier Report: Ice Loss in the Alps",
    ),
    (["12", "34 56"], None),
    (  # a page without a title: its first line is running text and is not continued
        [
            "Lorem ipsum dolor sit amet, consetetur sadipscing elitr, sed diam nonumy eirmod",
            "tempor invidunt ut labore et dolore magna aliquyam erat, sed diam voluptua.",
        ],
        "Lorem ipsum dolor sit amet, consetetur sadipscing elitr, sed diam nonumy eirmod",
    ),
]


@pytest.mark.parametrize(("lines", "title"), FIRST_PAGES)
def test_a_title_printed_over_two_lines_is_read_whole_and_stops_before_the_authors(lines, title):
    assert first_page_title("\n".join(lines)) == title
