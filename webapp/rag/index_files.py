"""FAISS index files, one per collection: build, patch, write atomically, load through a cache.

The document store (store.py) decides what belongs in an index - SQLite is the
source of truth - and calls this module under its write lock; this module only
knows FAISS and files. Files are replaced atomically (temp file, fsync,
os.replace, fsync of the folder) so a reader never sees half an index, and a
loaded index is reused until the file's (mtime, size) stamp changes.

Index type by size: exact IndexFlatIP (cosine on normalised vectors) up to
EXACT_SEARCH_LIMIT vectors, HNSW beyond; recall and query times measured by
benchmarks/index_recall.py are in docs/documents.md.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from webapp.atomic import atomic_path, fsync_dir


def _faiss() -> Any:
    """faiss, untyped: its generated stubs know neither its downcasts nor hnsw / id_map."""
    import faiss

    return faiss


EXACT_SEARCH_LIMIT = 200_000
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 80, 96


@dataclass(frozen=True)
class IndexDelta:
    """What one write changes in a collection's vectors: chunk ids gone, chunk ids (and vectors) new."""

    removed: Sequence[int] = ()
    added_ids: np.ndarray | None = None
    added: np.ndarray | None = None


class IndexFiles:
    def __init__(self, index_dir: Path, dimension: int):
        self.index_dir = Path(index_dir)
        self.dimension = dimension
        self._lock = threading.Lock()
        self._cache: dict[int, tuple[tuple[int, int], Any]] = {}  # collection -> (file stamp, index)

    def path(self, cid: int) -> Path:
        return self.index_dir / f"{cid}.faiss"

    def exists(self, cid: int) -> bool:
        return self.path(cid).exists()

    def build(self, ids: np.ndarray, vecs: np.ndarray) -> Any:
        faiss = _faiss()

        if len(ids) <= EXACT_SEARCH_LIMIT:
            base = faiss.IndexFlatIP(self.dimension)  # exact: vectors are normalised, so IP = cosine
        else:
            base = faiss.IndexHNSWFlat(self.dimension, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            base.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            base.hnsw.efSearch = HNSW_EF_SEARCH
        index = faiss.IndexIDMap2(base)
        if len(ids):
            index.add_with_ids(vecs, ids)
        return index

    def patched(self, cid: int, delta: IndexDelta, expected: int) -> Any:
        """A patched copy of the current index, or None when only a rebuild is safe.

        An exact index takes adds and removals; HNSW only adds (faiss cannot remove from it).
        The result must hold ``expected`` vectors (SQLite's count) and be the type that
        count calls for.
        """
        faiss = _faiss()

        path = self.path(cid)
        with self._lock:
            cached = self._cache.get(cid)
        try:
            current = (
                cached[1]
                if cached and path.exists() and cached[0] == _stamp(path)
                else (faiss.read_index(str(path)) if path.exists() else None)
            )
        except Exception:  # unreadable file: rebuild
            return None
        if current is None or current.d != self.dimension:
            return None
        exact = isinstance(faiss.downcast_index(faiss.downcast_index(current).index), faiss.IndexFlat)
        if not exact and delta.removed:
            return None
        index = faiss.clone_index(current)  # readers keep searching the old one meanwhile
        if delta.removed:
            index.remove_ids(np.asarray(delta.removed, dtype=np.int64))
        if delta.added_ids is not None and len(delta.added_ids):
            index.add_with_ids(np.ascontiguousarray(delta.added, dtype=np.float32), delta.added_ids)
        if index.ntotal != expected or exact != (expected <= EXACT_SEARCH_LIMIT):
            return None
        return index

    def write(self, cid: int, index: Any) -> None:
        faiss = _faiss()

        path = self.path(cid)
        with atomic_path(path) as tmp:
            faiss.write_index(index, str(tmp))
        with self._lock:
            self._cache[cid] = (_stamp(path), index)

    def load(self, cid: int, on_replaced: Callable[[], None] = lambda: None) -> Any:
        """The index in the file, reloaded if another writer replaced it (``on_replaced`` runs first)."""
        faiss = _faiss()

        path = self.path(cid)
        stamp = _stamp(path)
        with self._lock:
            cached = self._cache.get(cid)
            if cached and cached[0] == stamp:
                return cached[1]
            if cached:
                on_replaced()
            index = faiss.read_index(str(path))
            self._cache[cid] = (stamp, index)
            return index

    def stored_ids(self, cid: int) -> tuple[int, np.ndarray]:
        """(dimension, sorted ids) of the file as it is on disk; raises if it is missing or unreadable."""
        faiss = _faiss()

        index = faiss.read_index(str(self.path(cid)))
        ids = faiss.vector_to_array(index.id_map) if index.ntotal else np.zeros(0, np.int64)
        return index.d, np.sort(ids)

    def remove_all(self) -> None:
        """Delete every index file (callers rebuild them from SQLite) and forget what was loaded."""
        for f in self.index_dir.glob("*.faiss"):
            f.unlink()
        fsync_dir(self.index_dir)
        with self._lock:
            self._cache.clear()


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size
