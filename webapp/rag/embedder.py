"""Sentence embeddings with openvino-genai's TextEmbeddingPipeline.

Pooling, normalisation and max_length come from the registry manifest (the
export read them from the sentence-transformers folder). max_length matters:
unset, long chunks are embedded untruncated - slower and off-distribution.
Texts are embedded in batches sorted by length so a batch pads to similar
lengths instead of to its one long outlier.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

import numpy as np

from webapp.registry import ModelEntry

log = logging.getLogger(__name__)

DEFAULT_MIN_SIMILARITY = 0.25


class Embedder:
    def __init__(self, entry: ModelEntry, device: str = "CPU", batch_size: int = 32):
        import openvino_genai as ov_genai

        settings = entry.manifest.get("embedding", {})
        config = ov_genai.TextEmbeddingPipeline.Config()
        config.pooling_type = (
            ov_genai.TextEmbeddingPipeline.PoolingType.CLS
            if settings.get("pooling") == "cls"
            else ov_genai.TextEmbeddingPipeline.PoolingType.MEAN
        )
        config.normalize = bool(settings.get("normalize", True))
        config.max_length = int(settings.get("max_length", 256))
        self.name = entry.name
        self.dimension = int(settings.get("dimension", 0))
        # Cosines are not comparable across models: each records the threshold calibrated for it
        # (benchmarks/retrieval_eval.py prints the figures); 0.25 is MiniLM's.
        self.min_similarity = float(settings.get("min_similarity", DEFAULT_MIN_SIMILARITY))
        self.batch_size = batch_size
        self._pipe = ov_genai.TextEmbeddingPipeline(str(entry.path), device, config)
        self._lock = threading.Lock()  # one pipeline, one inference at a time
        if not self.dimension:
            self.dimension = int(self.embed_query("dimension probe").shape[0])

    def embed_documents(self, texts: Sequence[str], progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """[len(texts), dimension] float32, rows in the order of ``texts``."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        done = 0
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            with self._lock:
                vectors = self._pipe.embed_documents([texts[i] for i in idx])
            out[idx] = np.asarray(vectors, dtype=np.float32)
            done += len(idx)
            if progress:
                progress(done, len(texts))
        return out

    def embed_query(self, text: str) -> np.ndarray:
        with self._lock:
            return np.asarray(self._pipe.embed_query(text), dtype=np.float32)
