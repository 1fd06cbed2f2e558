"""Export a chat LLM to OpenVINO IR with NNCF weight compression and register it.

GGUF sources take a detour, because no single tool converts them correctly:

1. openvino-genai reads the GGUF natively and, with ``enable_save_ov_model``,
   writes an OpenVINO tokenizer/detokenizer that carry the right vocabulary,
   chat template and eos (``<|im_end|>`` for SmolLM2). We keep those files.
2. transformers dequantizes the GGUF weights into an fp32 model (its tokenizer
   conversion is wrong - a CodeLlama tokenizer with the wrong eos - so unused).
3. optimum-intel exports that model and NNCF compresses its weights.

The result is staged in ``<models>/.work`` and moved into place only after the
tokenizer, generation and quality checks pass, so a failed export never
replaces or half-writes a registered model.
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from quantize import checks, ovms
from quantize.sources import Source
from quantize.staging import StagingArea
from webapp.errors import UserError
from webapp.registry import ModelEntry, folder_size, load_entry, sha256_file, write_manifest

log = logging.getLogger(__name__)

WEIGHT_FORMATS = ("int4", "int8", "fp16")
TOKENIZER_FILES = (
    "openvino_tokenizer.xml",
    "openvino_tokenizer.bin",
    "openvino_detokenizer.xml",
    "openvino_detokenizer.bin",
)
# Left in the export folder, these make openvino-genai override the OpenVINO
# tokenizer's special tokens (eos becomes "</s>" for SmolLM2).
HF_TOKENIZER_LEFTOVERS = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "added_tokens.json",
)


@dataclass(frozen=True)
class Compression:
    """NNCF weight-compression settings (see `python -m quantize export-llm --help`)."""

    weight_format: str = "int4"
    sym: bool = True
    group_size: int = 64
    ratio: float = 1.0

    def __post_init__(self):
        if self.weight_format not in WEIGHT_FORMATS:
            raise UserError(f"Weight format must be one of {', '.join(WEIGHT_FORMATS)}, not {self.weight_format!r}.")
        if not 0.0 < self.ratio <= 1.0:
            raise UserError("The int4 ratio must be between 0 (exclusive) and 1.")
        if self.group_size != -1 and self.group_size <= 0:
            raise UserError("Group size must be a positive number of weights, or -1 for per-channel.")

    def describe(self) -> dict[str, Any]:
        if self.weight_format == "fp16":
            return {"format": "fp16"}
        if self.weight_format == "int8":
            return {"format": "int8", "sym": False, "group_size": -1, "ratio": 1.0}
        return {"format": "int4", **{k: v for k, v in asdict(self).items() if k != "weight_format"}}


def default_name(source: Source, compression: Compression) -> str:
    stem = source.path.stem if source.kind == "gguf" else source.path.name
    stem = stem.split(".")[0].lower()  # SmolLM2-135M-Instruct.Q4_1 -> smollm2-135m-instruct
    return f"{stem}-{compression.weight_format}"


def _tokenizer_from_gguf(gguf: Path, workdir: Path) -> tuple[Path, checks.TokenizerReference]:
    """Let openvino-genai convert the GGUF's tokenizer; record its ids as the reference."""
    import openvino_genai as ov_genai

    native = workdir / "gguf-native"
    native.mkdir()
    link = native / gguf.name
    os.symlink(gguf, link)  # genai writes its files beside the path it is given
    pipe = ov_genai.LLMPipeline(str(link), "CPU", enable_save_ov_model=True)
    tok = pipe.get_tokenizer()
    ids = tok.encode(checks.TOKENIZER_CHECK_TEXT, add_special_tokens=False).input_ids.data[0].tolist()
    ref = checks.TokenizerReference(
        ids=[int(i) for i in ids],
        eos_token_id=int(tok.get_eos_token_id()),
        chat_template=tok.chat_template,
        description="openvino-genai's native GGUF tokenizer",
    )
    del pipe, tok
    gc.collect()
    missing = [f for f in TOKENIZER_FILES if not (native / f).is_file()]
    if missing:
        raise UserError(
            f"openvino-genai could not convert the tokenizer of {gguf.name} ({', '.join(missing)} missing)."
        )
    return native, ref


def _tokenizer_from_hf(hf_dir: Path, workdir: Path) -> tuple[Path, checks.TokenizerReference]:
    """Convert a Hugging Face tokenizer with openvino-tokenizers; HF's own ids are the reference."""
    import openvino as ov
    from openvino_tokenizers import convert_tokenizer
    from transformers import AutoTokenizer, GenerationConfig

    hf_tok = AutoTokenizer.from_pretrained(hf_dir)
    if not hf_tok.chat_template:
        raise UserError(f"The model in {hf_dir} has no chat template, so it cannot be used for chat.")
    ov_tok, ov_detok = convert_tokenizer(hf_tok, with_detokenizer=True, skip_special_tokens=True)
    out = workdir / "hf-tokenizer"
    out.mkdir()
    ov.save_model(ov_tok, out / "openvino_tokenizer.xml")
    ov.save_model(ov_detok, out / "openvino_detokenizer.xml")
    try:
        eos = GenerationConfig.from_pretrained(hf_dir).eos_token_id
    except OSError:
        eos = hf_tok.eos_token_id
    eos = eos[0] if isinstance(eos, list) else eos
    ref = checks.TokenizerReference(
        ids=hf_tok.encode(checks.TOKENIZER_CHECK_TEXT, add_special_tokens=False),
        eos_token_id=int(eos),
        chat_template=hf_tok.chat_template,
        description=f"transformers {type(hf_tok).__name__}",
    )
    return out, ref


def _load_reference_model(source: Source, workdir: Path):
    """The uncompressed source in torch: fp32 weights (dequantized when the source is a GGUF)."""
    import torch
    from transformers import AutoModelForCausalLM

    if source.kind == "gguf":
        model = AutoModelForCausalLM.from_pretrained(
            source.path.parent, gguf_file=source.path.name, dtype=torch.float32
        )
        hf_dir = workdir / "hf-fp32"
        model.save_pretrained(hf_dir)
    else:
        hf_dir = source.path
        model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
    model.eval()
    return model, hf_dir


def _export_ir(hf_dir: Path, out: Path, compression: Compression) -> None:
    import openvino as ov
    from optimum.intel import OVModelForCausalLM, OVWeightQuantizationConfig

    if compression.weight_format == "fp16":
        model = OVModelForCausalLM.from_pretrained(hf_dir, export=True, load_in_8bit=False, compile=False)
        model.save_pretrained(out)
        ov.save_model(model.model, out / "openvino_model.xml", compress_to_fp16=True)
        return
    if compression.weight_format == "int8":
        qconfig = OVWeightQuantizationConfig(bits=8, sym=False)
    else:
        qconfig = OVWeightQuantizationConfig(
            bits=4, sym=compression.sym, group_size=compression.group_size, ratio=compression.ratio, dtype="int4"
        )
    model = OVModelForCausalLM.from_pretrained(hf_dir, export=True, quantization_config=qconfig, compile=False)
    model.save_pretrained(out)


def _quality(reference_model, out: Path, compression: Compression) -> dict[str, Any]:
    import torch
    from optimum.intel import OVModelForCausalLM

    ids = checks.openvino_tokenizer_ids(out, checks.QUALITY_EVAL_TEXT)[0]
    candidate = OVModelForCausalLM.from_pretrained(out, compile=True, ov_config={"INFERENCE_PRECISION_HINT": "f32"})

    def logits_of(model):
        def run(token_ids):
            with torch.no_grad():
                x = torch.tensor([token_ids])
                return model(input_ids=x, attention_mask=torch.ones_like(x)).logits[0].float().numpy()

        return run

    return checks.compare_logits(ids, logits_of(reference_model), logits_of(candidate), compression.weight_format)


def export_llm(
    source: Source,
    models_dir: Path,
    compression: Compression,
    name: str | None = None,
    overwrite: bool = False,
    step: Callable[[str], None] = log.info,
) -> ModelEntry:
    """Export, check and register ``source``; return the registered entry."""
    name = name or default_name(source, compression)
    target = Path(models_dir) / name
    if target.exists() and not overwrite:
        raise UserError(f"A model named {name} is already registered; pass --overwrite to replace it.")
    started = time.monotonic()
    with StagingArea(models_dir, name) as stage:
        step(f"[1/6] reading the tokenizer of {source.path.name}")
        if source.kind == "gguf":
            tok_dir, tok_ref = _tokenizer_from_gguf(source.path, stage.workdir)
        else:
            tok_dir, tok_ref = _tokenizer_from_hf(source.path, stage.workdir)
        step("[2/6] loading the uncompressed source model (reference for the quality check)")
        reference, hf_dir = _load_reference_model(source, stage.workdir)
        context_length = int(getattr(reference.config, "max_position_embeddings", 2048))
        how = "uncompressed" if compression.weight_format == "fp16" else "compressed by NNCF"
        step(f"[3/6] exporting to OpenVINO, {compression.weight_format} weights {how}")
        _export_ir(hf_dir, stage.out, compression)
        for leftover in HF_TOKENIZER_LEFTOVERS:
            (stage.out / leftover).unlink(missing_ok=True)
        for fname in TOKENIZER_FILES:
            shutil.copy2(tok_dir / fname, stage.out / fname)
        step("[4/6] checking the tokenizer against the source's")
        tokenizer_check = checks.check_tokenizer(stage.out, tok_ref)
        step("[5/6] checking generation and quality against the uncompressed source")
        generation_check = checks.check_generation(stage.out)
        quality = _quality(reference, stage.out, compression)
        del reference
        gc.collect()
        step("[6/6] registering")
        ovms.write_graph(stage.out, name)
        files = {p.name: sha256_file(p) for p in sorted(stage.out.iterdir()) if p.is_file()}
        write_manifest(
            stage.out,
            {
                "name": name,
                "kind": "llm",
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "source": {"type": source.kind, "uri": source.uri, "sha256": source.fingerprint()},
                "weights": compression.describe(),
                "tools": tool_versions(),
                "context_length": context_length,
                "size_bytes": folder_size(stage.out),
                "export_seconds": round(time.monotonic() - started, 1),
                "files": files,
                "checks": {"tokenizer": tokenizer_check, "generation": generation_check},
                "quality": quality,
            },
        )
        stage.commit(target)
    ovms.write_ovms_config(models_dir)
    return load_entry(target)


def tool_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("openvino", "openvino-genai", "openvino-tokenizers", "optimum-intel", "nncf", "transformers", "torch"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out
