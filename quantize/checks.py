"""Checks an export must pass before it is registered; any failure aborts the export.

Three things go wrong in practice when a model is converted for OpenVINO:
the tokenizer is rebuilt wrongly (the GGUF -> transformers route builds a
CodeLlama tokenizer with the wrong eos), compression damages the weights more
than expected, or the chat template / eos wiring makes the model ramble forever.
Each has a check here, and each records its figure in the manifest.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from webapp.errors import UserError

log = logging.getLogger(__name__)

DATA_DIR = Path(__file__).parent / "data"
TOKENIZER_CHECK_TEXT = (DATA_DIR / "tokenizer_check.txt").read_text(encoding="utf-8")
QUALITY_EVAL_TEXT = (DATA_DIR / "quality_eval.txt").read_text(encoding="utf-8")

# How far a compressed model may drift from its uncompressed source on
# QUALITY_EVAL_TEXT before the export is refused. Measured on SmolLM2-135M
# (docs/quantization.md): int4 sym g64 x1.32 perplexity / 64% top-1 agreement,
# int8 x1.007 / 96%, fp16 x1.000 / 100%. A 135M model is about the most fragile
# there is under int4 (larger models drift less), so the int4 bound sits ~15%
# beyond that figure. Garbage (wrong tokenizer, broken scales) lands at ratios
# of several times and agreement near zero, far outside every bound.
QUALITY_BOUNDS = {
    "int4": {"max_ppl_ratio": 1.50, "min_top1_agreement": 0.55},
    "int8": {"max_ppl_ratio": 1.05, "min_top1_agreement": 0.90},
    "fp16": {"max_ppl_ratio": 1.01, "min_top1_agreement": 0.97},
}


class ExportCheckFailed(UserError):
    """The exported model did not pass a check; nothing was registered."""


@dataclass(frozen=True)
class TokenizerReference:
    """Token ids the source's own tokenizer produced, to compare the exported one against."""

    ids: list[int]
    eos_token_id: int
    chat_template: str
    description: str


def openvino_tokenizer_ids(model_dir: Path, text: str) -> tuple[list[int], int, str]:
    import openvino_genai as ov_genai

    tok = ov_genai.Tokenizer(str(model_dir))
    ids = tok.encode(text, add_special_tokens=False).input_ids.data[0].tolist()
    return [int(i) for i in ids], int(tok.get_eos_token_id()), tok.chat_template


def check_tokenizer(model_dir: Path, ref: TokenizerReference) -> dict[str, Any]:
    """Exported OpenVINO tokenizer must give the reference's ids, eos and chat template."""
    ids, eos, template = openvino_tokenizer_ids(model_dir, TOKENIZER_CHECK_TEXT)
    first_diff = next((i for i, (a, b) in enumerate(zip(ids, ref.ids)) if a != b), None)
    if first_diff is None and len(ids) != len(ref.ids):
        first_diff = min(len(ids), len(ref.ids))
    result = {
        "reference": ref.description,
        "characters": len(TOKENIZER_CHECK_TEXT),
        "tokens": len(ids),
        "identical_ids": first_diff is None,
        "eos_token_id": eos,
        "eos_matches": eos == ref.eos_token_id,
        "chat_template_matches": template == ref.chat_template,
    }
    if first_diff is not None:
        raise ExportCheckFailed(
            f"The exported tokenizer differs from the source's at token {first_diff} of "
            f"{len(ref.ids)}; the export was not registered."
        )
    if eos != ref.eos_token_id:
        raise ExportCheckFailed(
            f"The exported tokenizer has eos id {eos} but the source model uses "
            f"{ref.eos_token_id}; the export was not registered."
        )
    if ref.chat_template and template != ref.chat_template:
        raise ExportCheckFailed("The exported tokenizer lost the model's chat template; the export was not registered.")
    return result


def check_generation(model_dir: Path, max_new_tokens: int = 64) -> dict[str, Any]:
    """Answer a simple instruction; it must be readable text that ends at eos, not at the cap."""
    import openvino_genai as ov_genai

    pipe = ov_genai.LLMPipeline(str(model_dir), "CPU")
    question = "What is the capital of France? Answer in one sentence."
    history = ov_genai.ChatHistory()
    history.append({"role": "user", "content": question})
    config = ov_genai.GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False)
    result = pipe.generate(history, config)
    text = result.texts[0] if hasattr(result, "texts") else str(result)
    n_tokens = len(pipe.get_tokenizer().encode(text, add_special_tokens=False).input_ids.data[0])
    letters = sum(ch.isalpha() or ch.isspace() for ch in text)
    readable = bool(text.strip()) and letters / max(1, len(text)) > 0.7
    stopped = n_tokens < max_new_tokens
    outcome = {"prompt": question, "output": text, "tokens": n_tokens, "stopped_at_eos": stopped, "readable": readable}
    if not readable:
        raise ExportCheckFailed(
            f"The exported model answers with garbage ({text[:60]!r}); the export was not registered."
        )
    if not stopped:
        raise ExportCheckFailed(
            f"The exported model did not stop within {max_new_tokens} tokens on a one-sentence "
            "question (eos is probably wired wrongly); the export was not registered."
        )
    return outcome


def compare_logits(
    token_ids: list[int],
    reference_logits: Callable[[list[int]], Any],
    candidate_logits: Callable[[list[int]], Any],
    weight_format: str,
) -> dict[str, Any]:
    """Perplexity of both models on the same ids, and how often their top-1 predictions agree.

    Both callables return a numpy array of shape [seq_len, vocab].
    """
    import numpy as np

    ref = np.asarray(reference_logits(token_ids), dtype=np.float64)
    cand = np.asarray(candidate_logits(token_ids), dtype=np.float64)
    targets = np.asarray(token_ids[1:])

    def nll(logits):
        logits = logits[:-1]
        logz = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
        return float(np.mean(logz - logits[np.arange(len(targets)), targets]))

    ppl_ref, ppl_cand = math.exp(nll(ref)), math.exp(nll(cand))
    agreement = float(np.mean(ref.argmax(-1) == cand.argmax(-1)))
    bounds = QUALITY_BOUNDS.get(weight_format, QUALITY_BOUNDS["int4"])
    result = {
        "method": "perplexity and top-1 next-token agreement vs the uncompressed source on quantize/data/quality_eval.txt",
        "tokens": len(token_ids),
        "perplexity_reference": round(ppl_ref, 4),
        "perplexity_model": round(ppl_cand, 4),
        "perplexity_ratio": round(ppl_cand / ppl_ref, 4),
        "top1_agreement": round(agreement, 4),
        "bounds": bounds,
    }
    result["passed"] = (
        result["perplexity_ratio"] <= bounds["max_ppl_ratio"] and agreement >= bounds["min_top1_agreement"]
    )
    if not result["passed"]:
        raise ExportCheckFailed(
            f"Compression damaged the model too much (perplexity x{result['perplexity_ratio']}, "
            f"top-1 agreement {agreement:.0%}; allowed x{bounds['max_ppl_ratio']} and "
            f"{bounds['min_top1_agreement']:.0%}); the export was not registered."
        )
    return result
