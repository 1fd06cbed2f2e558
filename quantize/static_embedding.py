"""Distil a sentence-transformers model into a static (lookup-table) embedding model.

Why: on a CPU without AVX-512/VNNI a 6-layer MiniLM embeds ~18 chunks/s, which
caps indexing at ~4 pages/s (docs/documents.md). A static model embeds a text
as the weighted mean of one vector per token - no transformer layers at run
time - and runs at ~1,000 chunks/s, so parsing the PDF becomes the only real cost.

The method is model2vec's (Tulkens & van Dongen, 2024): pass every vocabulary
token through the teacher as ``[CLS] token [SEP]``, mean-pool the output,
reduce with PCA, and weight each row by SIF over a Zipf estimate of the token's
frequency (rank = position in the vocabulary). It is reimplemented here in ~40
lines because the ``model2vec`` package pins an older ``transformers`` than
optimum-intel needs, and it writes its own format, not OpenVINO IR.

The result is an OpenVINO IR with the teacher's input names and a
``last_hidden_state`` output (a Gather from the table), so the serving side
runs it with the same ``TextEmbeddingPipeline`` (mean pooling + normalise) and
the teacher's own OpenVINO tokenizer. Special tokens get zero rows: the
pipeline adds [CLS]/[SEP] and counts them in the mean, which only scales the
vector, and normalisation removes scale.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

SIF_COEFFICIENT = 1e-4  # model2vec's default
UNUSED_TOKEN = re.compile(r"\[unused\d+\]")


def distil_table(teacher: Path, dims: int = 256, batch: int = 512, step: Callable[[str], None] = print) -> np.ndarray:
    """[vocabulary size, dims] float32; zero rows for special and unused tokens."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(teacher)
    model = AutoModel.from_pretrained(teacher, dtype=torch.float32).eval()
    vocab_size = len(tok.get_vocab())
    skip = set(tok.all_special_ids) | {i for t, i in tok.get_vocab().items() if UNUSED_TOKEN.fullmatch(t)}
    keep = [i for i in range(vocab_size) if i not in skip]
    prefix = [tok.cls_token_id] if tok.cls_token_id is not None else []
    suffix = [tok.sep_token_id] if tok.sep_token_id is not None else []
    hidden = np.zeros((len(keep), model.config.hidden_size), np.float32)
    with torch.inference_mode():
        for start in range(0, len(keep), batch):
            ids = torch.tensor([[*prefix, i, *suffix] for i in keep[start : start + batch]])
            out = model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
            hidden[start : start + len(ids)] = out.mean(1).numpy()
            if (start // batch) % 10 == 0:
                step(f"      teacher pass: {min(start + batch, len(keep)):,}/{len(keep):,} tokens")
    reduced = _pca(hidden, dims)
    rank = np.arange(2, len(keep) + 2)
    prob = (1.0 / rank) / np.sum(1.0 / rank)
    reduced *= (SIF_COEFFICIENT / (SIF_COEFFICIENT + prob))[:, None]
    table = np.zeros((vocab_size, reduced.shape[1]), np.float32)
    table[keep] = reduced
    return table


def _pca(x: np.ndarray, dims: int) -> np.ndarray:
    """Project onto the top ``dims`` principal components (eigh of the covariance; 384x384 is tiny)."""
    centred = x - x.mean(0)
    eigvals, eigvecs = np.linalg.eigh(centred.T @ centred / (len(x) - 1))
    top = eigvecs[:, ::-1][:, : min(dims, x.shape[1])]
    projected = centred @ top
    # Fix each component's sign (eigh's is arbitrary) so rebuilding gives the same table.
    signs = np.sign(projected[np.abs(projected).argmax(0), np.arange(projected.shape[1])])
    return (projected * signs).astype(np.float32)


def save_ir(table: np.ndarray, out_dir: Path, input_names: list[str]) -> Path:
    """Write openvino_model.xml/.bin: last_hidden_state = table[input_ids] (fp16 table, fp32 output)."""
    import openvino as ov
    from openvino import opset13 as ops

    params = []
    for name in input_names:  # the teacher's inputs, so the same tokenizer feeds it
        p = ops.parameter([-1, -1], ov.Type.i64, name=name)
        p.output(0).set_names({name})
        params.append(p)
    ids = next(p for p in params if p.get_friendly_name() == "input_ids")
    rows = ops.gather(ops.constant(table.astype(np.float16)), ids, ops.constant(0))
    result = ops.result(ops.convert(rows, ov.Type.f32))
    result.output(0).set_names({"last_hidden_state"})
    path = Path(out_dir) / "openvino_model.xml"
    ov.save_model(ov.Model([result], params, "static_embedding"), path, compress_to_fp16=False)
    return path


def reference_embeddings(teacher: Path, table: np.ndarray, texts: list[str]) -> np.ndarray:
    """What the IR must produce: normalised mean of the rows of each text's tokens (no special tokens)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(teacher)
    out = np.zeros((len(texts), table.shape[1]), np.float32)
    for n, text in enumerate(texts):
        ids = tok(text, add_special_tokens=False, truncation=False)["input_ids"]
        v = table[ids].mean(0) if ids else np.zeros(table.shape[1], np.float32)
        out[n] = v / max(float(np.linalg.norm(v)), 1e-12)
    return out


def similarity_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman correlation of all pairwise cosine similarities: does the student rank pairs like the teacher?"""

    def pairwise(x):
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        s = x @ x.T
        return s[np.triu_indices(len(x), 1)]

    ra = pairwise(a).argsort().argsort().astype(np.float64)
    rb = pairwise(b).argsort().argsort().astype(np.float64)
    return float(np.corrcoef(ra, rb)[0, 1])
