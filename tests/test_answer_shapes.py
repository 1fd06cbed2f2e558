"""The answer's shape for a comparison's aspect (webapp/rag/answer_shapes.py) and how a comparison
uses it (webapp/chat/whole_documents.py): among a document's closest sentences on the aspect, the
ones shaped like an answer lead its column. What it changes on real papers: docs/evidence.md."""

from types import SimpleNamespace

from webapp.chat import whole_documents
from webapp.rag.answer_shapes import answer_shape, lead_with_shape, question_shape
from webapp.rag.evidence import Evidence


def test_an_aspect_about_time_wants_a_duration_and_one_about_size_any_number():
    duration = answer_shape("training time")
    assert duration is not None
    assert duration("DistilBERT was trained on 8 16GB V100 GPUs for approximately 90 hours.")
    assert duration("Training took two days on a single machine.")
    assert not duration("The model has 66 million parameters.")  # a number, not a duration
    # "how many times" counts; it does not ask for a duration
    times = answer_shape("How many times is each sentence masked?")
    assert times is not None and times("Each sequence is masked in 10 different ways.")
    count = answer_shape("number of layers")
    assert count is not None and count("The model has 24 layers.") and count("The set of eight tasks.")
    assert not count("The layers are stacked on top of each other.")
    assert answer_shape("pretraining objective") is None  # no shape: the closest sentences as they rank
    # a number that points somewhere states no quantity: a caption's, a citation's year or [n]
    assert not count("Table 6: Ablation over model size. #L = the number of layers; #H = hidden size.")
    assert not count("It is trained in all layers (Peters et al., 2018a; Radford et al., 2018) [12].")
    assert count("We train on 2048 A100 GPUs with 80GB of memory each.")
    assert count("Each input holds at most (2048 tokens) of text.")  # a number in brackets is no citation year
    # "one" is mostly a determiner in prose, not a count
    assert not count("We extract the activations from one or more layers of the model.")


class _Documents:
    """A stand-in for DocumentService: one document whose closest windows on any aspect come in a
    fixed order, best first, as many as asked for."""

    def __init__(self, windows):
        self.windows = windows

    def short_name(self, doc):
        return "Distil"

    def search(self, collection, query, **kwargs):
        return [SimpleNamespace(document_id=1, chunk_id=1)]

    def evidence(self, query, passages, k=3):
        return [Evidence(n, 1, "distil.pdf", n, text, 1.0 - n / 10) for n, text in enumerate(self.windows[:k], 1)]


def test_a_comparison_column_leads_with_the_windows_shaped_like_the_answer():
    windows = [
        "Distillation transfers the knowledge of a large teacher to a small student model.",
        "The student is trained with a triple loss over the teacher's soft targets.",
        "We train on the same corpus as the original model.",
        "The student reaches 97% of the teacher's score on the benchmark.",
        "Training the student took approximately 90 hours on eight GPUs.",
        "Inference is 60% faster on a CPU than the teacher's.",
    ]
    docs = [SimpleNamespace(id=1, label="distil.pdf"), SimpleNamespace(id=2, label="other.pdf")]
    out = whole_documents.comparison(_Documents(windows), "default", docs, "training time", actor=None)
    first_row = out.text.splitlines()[4]  # heading, blank line, table header, rule, first row
    assert "approximately 90 hours" in first_row, out.text
    # an aspect with no shape keeps the closest windows first
    plain = whole_documents.comparison(_Documents(windows), "default", docs, "distillation method", actor=None)
    assert "Distillation transfers" in plain.text.splitlines()[4]


def test_a_question_names_its_answers_shape_in_a_phrase_not_in_any_one_word():
    assert question_shape("How long did it take to train BERT-large?") is answer_shape("training time")
    assert question_shape("How many parameters does BERT-large have?") is not None
    # words that only look like a shape: names wanted, or no quantity at all
    assert question_shape("What data was BERT trained on?") is None
    assert question_shape("What does the model take as input?") is None
    assert question_shape("What is the main idea of the paper?") is None


def test_the_best_window_stays_first_and_weak_ones_do_not_jump_ahead():
    w = lambda text, score: Evidence(1, 1, "a.pdf", 1, text, score)  # noqa: E731
    best = w("RoBERTa is pretrained on a larger and more diverse corpus than BERT.", 0.80)
    second = w("The corpus mixes books, news, web text and stories.", 0.60)
    third = w("Pretraining data matters for downstream results.", 0.55)
    shaped = w("In total we pretrain over 160GB of text.", 0.50)
    weak = w("GPT-2 used a vocabulary of 50,257 tokens.", 0.30)
    closest, wider = [best, second, third], [best, second, third, shaped, weak]
    wants = question_shape("How much data was RoBERTa pretrained on?")
    assert lead_with_shape(closest, wider, wants, floor=0.4) == [best, shaped, second]
    # no window of the shape above the floor: nothing moves
    assert lead_with_shape(closest, [best, second, third, weak], wants, floor=0.4) == closest
    assert lead_with_shape(closest, wider, None, floor=0.4) == closest
