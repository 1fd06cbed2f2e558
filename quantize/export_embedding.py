"""Export a sentence-transformers embedding model to OpenVINO and register it.

The serving side embeds with ``openvino_genai.TextEmbeddingPipeline``, which
needs the pooling, normalisation and max length the model was trained with;
we read them from the sentence-transformers folder and record them in the
manifest. Setting max_length matters: left unset, long chunks are embedded
untruncated - slower, and far from what the model was trained on.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from quantize.export_llm import tool_versions
from quantize.sources import Source
from quantize.staging import StagingArea
from webapp.errors import UserError
from webapp.registry import ModelEntry, folder_size, load_entry, sha256_file, write_manifest

log = logging.getLogger(__name__)

MIN_MEAN_COSINE = 0.999  # fp32 IR vs torch; measured 0.99998 mean for MiniLM (docs/quantization.md)


def sentence_transformer_settings(folder: Path) -> dict[str, Any]:
    """Pooling, normalisation and max length from a sentence-transformers folder (with defaults)."""
    pooling, normalize, max_length = "mean", False, 512
    pool_cfg = folder / "1_Pooling" / "config.json"
    if pool_cfg.is_file():
        cfg = json.loads(pool_cfg.read_text())
        if cfg.get("pooling_mode_cls_token"):
            pooling = "cls"
    modules = folder / "modules.json"
    if modules.is_file():
        normalize = any("Normalize" in m.get("type", "") for m in json.loads(modules.read_text()))
    st_cfg = folder / "sentence_bert_config.json"
    if st_cfg.is_file():
        max_length = int(json.loads(st_cfg.read_text()).get("max_seq_length", max_length))
    return {"pooling": pooling, "normalize": normalize, "max_length": max_length}


def _reference_embeddings(folder: Path, texts: list[str], settings: dict[str, Any]):
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder, dtype=torch.float32).eval()
    batch = tok(texts, padding=True, truncation=True, max_length=settings["max_length"], return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    if settings["pooling"] == "cls":
        emb = hidden[:, 0]
    else:
        mask = batch["attention_mask"].unsqueeze(-1).float()
        emb = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    if settings["normalize"]:
        emb = torch.nn.functional.normalize(emb, dim=-1)
    return emb.numpy()


def _openvino_embeddings(folder: Path, texts: list[str], settings: dict[str, Any]):
    import numpy as np
    import openvino_genai as ov_genai

    cfg = ov_genai.TextEmbeddingPipeline.Config()
    cfg.pooling_type = (
        ov_genai.TextEmbeddingPipeline.PoolingType.CLS
        if settings["pooling"] == "cls"
        else ov_genai.TextEmbeddingPipeline.PoolingType.MEAN
    )
    cfg.normalize = settings["normalize"]
    cfg.max_length = settings["max_length"]
    pipe = ov_genai.TextEmbeddingPipeline(str(folder), "CPU", cfg)
    return np.asarray(pipe.embed_documents(texts), dtype=np.float32)


def export_embedding(
    source: Source,
    models_dir: Path,
    name: str | None = None,
    int8: bool = False,
    overwrite: bool = False,
    step: Callable[[str], None] = log.info,
) -> ModelEntry:
    import numpy as np
    from optimum.exporters.openvino import main_export

    from quantize.checks import ExportCheckFailed

    if source.kind != "hf-folder":
        raise UserError("Embedding models must be a Hugging Face / sentence-transformers folder, not a GGUF file.")
    name = name or source.path.name.lower() + ("-int8" if int8 else "")
    target = _target(models_dir, name, overwrite)
    settings = {**sentence_transformer_settings(source.path), "min_similarity": TRANSFORMER_MIN_SIMILARITY}
    started = time.monotonic()
    with StagingArea(models_dir, name) as stage:
        step(f"[1/3] exporting {source.path.name} to OpenVINO ({'int8' if int8 else 'fp32'} weights)")
        main_export(str(source.path), stage.out, task="feature-extraction", convert_tokenizer=True)
        if int8:
            _compress_int8(stage.out)
        step("[2/3] comparing embeddings with the torch original")
        texts = _eval_sentences()
        ref = _reference_embeddings(source.path, texts, settings)
        got = _openvino_embeddings(stage.out, texts, settings)
        cos = (ref * got).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1))
        bound = 0.99 if int8 else MIN_MEAN_COSINE
        quality = {
            "method": "cosine similarity vs transformers on the sentences of quality_eval.txt",
            "sentences": len(texts),
            "mean_cosine": round(float(cos.mean()), 6),
            "min_cosine": round(float(cos.min()), 6),
            "bound_mean_cosine": bound,
            "passed": bool(cos.mean() >= bound),
        }
        if not quality["passed"]:
            raise ExportCheckFailed(
                f"The exported embedding model disagrees with the original (mean cosine {cos.mean():.4f}, "
                f"need {bound}); the export was not registered."
            )
        step("[3/3] registering")
        _register(stage, name, source, started, settings, int(got.shape[1]), "int8" if int8 else "fp32", quality)
        stage.commit(target)
    return load_entry(target)


def _compress_int8(out: Path) -> None:
    """Compress the exported IR's weights to int8 with NNCF, in place. Not through main_export's
    ``ov_config``: optimum-intel 2.2 accepts a quantization config there and ignores it, so the
    weights stayed fp32 under a manifest that said int8 (found in session 13: all-mpnet-base-v2's
    "int8" export was 436 MB, its fp32 size)."""
    import nncf
    import openvino as ov

    xml = out / "openvino_model.xml"
    model = nncf.compress_weights(ov.Core().read_model(xml), mode=nncf.CompressWeightsMode.INT8_ASYM)
    staged = out / "int8"
    ov.save_model(model, staged / "openvino_model.xml", compress_to_fp16=False)
    del model
    for suffix in (".xml", ".bin"):
        (staged / f"openvino_model{suffix}").replace(out / f"openvino_model{suffix}")
    staged.rmdir()


def _target(models_dir: Path, name: str, overwrite: bool) -> Path:
    target = Path(models_dir) / name
    if target.exists() and not overwrite:
        raise UserError(f"A model named {name} is already registered; pass --overwrite to replace it.")
    return target


def _register(
    stage: StagingArea,
    name: str,
    source: Source,
    started: float,
    settings: dict[str, Any],
    dimension: int,
    weights: str,
    quality: dict[str, Any],
    **extra: Any,
) -> None:
    files = {p.name: sha256_file(p) for p in sorted(stage.out.iterdir()) if p.is_file()}
    write_manifest(
        stage.out,
        {
            "name": name,
            "kind": "embedding",
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "source": {"type": source.kind, "uri": source.uri, "sha256": source.fingerprint()},
            "weights": {"format": weights},
            "tools": tool_versions(),
            "embedding": {**settings, "dimension": dimension},
            "context_length": settings["max_length"],
            "size_bytes": folder_size(stage.out),
            "export_seconds": round(time.monotonic() - started, 1),
            "files": files,
            "quality": quality,
            **extra,
        },
    )


def _eval_sentences() -> list[str]:
    from quantize.checks import QUALITY_EVAL_TEXT

    return [s.strip() + "." for s in QUALITY_EVAL_TEXT.replace("\n", " ").split(". ") if s.strip()]


# The static model must reproduce its lookup table exactly (the check catches a wrong tokenizer
# or wrong row order), and rank sentence pairs more like its teacher than chance does. On the
# 105 sentence pairs of quality_eval.txt MiniLM -> static scores 0.43; the same table with its
# rows shuffled scores 0.11 and a random table 0.13 (shared words alone give some agreement).
MIN_STATIC_EXPORT_COSINE = 0.9999
MIN_STATIC_AGREEMENT = 0.3
STATIC_MAX_LENGTH = 512  # no positional limit; 512 tokens is about twice our largest chunk
# Relevance gates (cosine below which a passage counts as unrelated), calibrated with
# benchmarks/retrieval_eval.py on the arXiv questions + 12 off-topic ones (docs/documents.md).
# Static vectors share a large common component, so unrelated text scores higher than with MiniLM.
STATIC_MIN_SIMILARITY = 0.50
TRANSFORMER_MIN_SIMILARITY = 0.25


def export_static_embedding(
    source: Source,
    models_dir: Path,
    name: str | None = None,
    dims: int = 256,
    overwrite: bool = False,
    step: Callable[[str], None] = log.info,
) -> ModelEntry:
    """Distil ``source`` (a sentence-transformers folder) into a static model and register it."""
    import shutil

    import numpy as np
    import openvino as ov
    from optimum.exporters.openvino import main_export

    from quantize.checks import ExportCheckFailed
    from quantize.static_embedding import (
        SIF_COEFFICIENT,
        distil_table,
        reference_embeddings,
        save_ir,
        similarity_agreement,
    )

    if source.kind != "hf-folder":
        raise UserError("Embedding models must be a Hugging Face / sentence-transformers folder, not a GGUF file.")
    name = name or source.path.name.lower() + "-static"
    target = _target(models_dir, name, overwrite)
    teacher_settings = sentence_transformer_settings(source.path)
    settings = {
        "pooling": "mean",
        "normalize": True,
        "max_length": STATIC_MAX_LENGTH,
        "min_similarity": STATIC_MIN_SIMILARITY,
    }
    started = time.monotonic()
    with StagingArea(models_dir, name) as stage:
        step(f"[1/4] distilling {source.path.name} into a {dims}-dimensional static table")
        table = distil_table(source.path, dims=dims, step=step)
        step("[2/4] writing the OpenVINO IR and the teacher's OpenVINO tokenizer")
        # The teacher's own export gives us its tokenizer converted by openvino-tokenizers.
        teacher_ir = stage.workdir / "teacher"
        main_export(str(source.path), teacher_ir, task="feature-extraction", convert_tokenizer=True)
        inputs = [i.get_any_name() for i in ov.Core().read_model(teacher_ir / "openvino_model.xml").inputs]
        save_ir(table, stage.out, inputs)
        for f in teacher_ir.iterdir():
            if f.is_file() and not f.name.startswith("openvino_model."):
                shutil.copy2(f, stage.out / f.name)
        step("[3/4] checking the IR against the table, and the ranking against the teacher")
        texts = _eval_sentences()
        got = _openvino_embeddings(stage.out, texts, settings)
        want = reference_embeddings(source.path, table, texts)
        cos = (got * want).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))
        agreement = similarity_agreement(_reference_embeddings(source.path, texts, teacher_settings), got)
        quality = {
            "method": "IR vs lookup table (cosine); teacher agreement = Spearman of pairwise "
            "similarities vs the transformer on the sentences of quality_eval.txt",
            "sentences": len(texts),
            "mean_cosine": round(float(cos.mean()), 6),
            "min_cosine": round(float(cos.min()), 6),
            "bound_mean_cosine": MIN_STATIC_EXPORT_COSINE,
            "teacher_agreement": round(agreement, 4),
            "bound_teacher_agreement": MIN_STATIC_AGREEMENT,
            "passed": bool(cos.mean() >= MIN_STATIC_EXPORT_COSINE and agreement >= MIN_STATIC_AGREEMENT),
        }
        if not quality["passed"]:
            raise ExportCheckFailed(
                f"The static model failed its checks (IR cosine {cos.mean():.5f}, need {MIN_STATIC_EXPORT_COSINE}; "
                f"teacher agreement {agreement:.3f}, need {MIN_STATIC_AGREEMENT}); nothing was registered."
            )
        step("[4/4] registering")
        _register(
            stage,
            name,
            source,
            started,
            settings,
            int(table.shape[1]),
            "static-fp16",
            quality,
            static={
                "teacher": source.path.name,
                "method": "model2vec-style distillation",
                "pca_dims": int(table.shape[1]),
                "sif_coefficient": SIF_COEFFICIENT,
                "teacher_max_length": teacher_settings["max_length"],
            },
        )
        stage.commit(target)
    return load_entry(target)
