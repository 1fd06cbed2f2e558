"""Which path a question takes (webapp/chat/tasks.py): pure wording, no model, no documents."""

import pytest

from webapp.chat.tasks import aspect_label, aspect_of, task_of


@pytest.mark.parametrize(
    ("question", "named", "task"),
    [
        ("Summarize the RoBERTa paper", 1, "summarize"),
        ("What is the LLaMA paper about?", 1, "summarize"),
        ("TL;DR of bert.pdf please", 1, "summarize"),
        ("What are the main findings of HellaSwag?", 1, "summarize"),
        ("Compare BERT and DistilBERT on model size", 2, "compare"),
        ("How does RoBERTa differ from BERT in pretraining data?", 2, "compare"),
        ("BERT vs RoBERTa", 2, "compare"),
        ("Compare BERT and DistilBERT on model size", 1, "answer"),  # one document: nothing to compare
        # a value asked "compared with" something is a question, not a comparison of documents
        ("What zero-shot accuracy does LLaMA get on HellaSwag compared with PaLM?", 2, "answer"),
        ("What sections does the LLaMA paper have?", 1, "outline"),
        ("Which tables are in roberta.pdf?", 1, "outline"),
        ("What is in this collection?", 0, "overview"),
        ("Which documents are there?", 0, "overview"),
        ("How big is BERT-large?", 1, "answer"),
        ("How many parameters does the largest LLaMA model have?", 1, "answer"),
    ],
)
def test_the_wording_picks_the_path(question, named, task):
    assert task_of(question, named) == task


def test_a_comparison_shows_its_aspect_as_the_user_wrote_it():
    """The table's heading reads "Number of parameters", not the search words "number parameters"."""
    names = ["BERT", "DistilBERT"]
    assert aspect_label("Compare BERT and DistilBERT on the number of parameters", names) == "number of parameters"
    assert aspect_label("How does RoBERTa differ from BERT in pretraining data?", ["RoBERTa", "BERT"]) == (
        "pretraining data"
    )
    assert aspect_label("Compare the two documents on temperature and pressure", []) == "temperature and pressure"
    assert aspect_label("Compare PAL and DetectGPT on the language models they use", ["PAL", "DetectGPT"]) == (
        "language models they use"
    )
    # the comparing verb and a second sentence are not the aspect
    assert aspect_label("How do BERT and RoBERTa compare in terms of training data?", ["BERT", "RoBERTa"]) == (
        "training data"
    )
    assert aspect_label("How do BERT and RoBERTa differ in training data?", ["BERT", "RoBERTa"]) == "training data"
    # the aspect before the names, or none at all: nothing to show as typed (the search words are)
    assert aspect_label("Compare the model size of LLaMA and Megatron-LM", ["LLaMA", "Megatron-LM"]) == ""
    assert aspect_label("Compare bert.pdf and roberta.pdf", ["bert.pdf", "roberta.pdf"]) == ""


def test_the_aspect_of_a_comparison_is_what_is_left_without_names_and_comparing_words():
    assert aspect_of("Compare BERT and DistilBERT on model size", ["BERT", "DistilBERT"]) == "model size"
    assert (
        aspect_of("How does RoBERTa differ from BERT in pretraining data?", ["RoBERTa", "BERT"]) == "pretraining data"
    )
    assert aspect_of("Compare the two documents on temperature and pressure", []) == "temperature pressure"
    assert aspect_of("Compare BERT-large and BERT", ["BERT"]) == "BERT-large"  # a name inside a compound stays
    assert aspect_of("Compare bert.pdf and roberta.pdf", ["bert.pdf", "roberta.pdf"]) == ""
