"""Benchmark results: plain dataclasses, exported as versioned JSON, CSV and a Markdown table."""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from webapp.atomic import atomic_write_text

REPORT_FORMAT = 1
METRICS = [  # (key, column title)
    ("load_s", "load s"),
    ("ttft_ms", "TTFT ms"),
    ("ttft_p95_ms", "TTFT p95 ms"),
    ("tpot_ms", "TPOT ms"),
    ("decode_tok_s", "decode tok/s"),
    ("prefill_tok_s", "prefill tok/s"),
    ("e2e_s", "end-to-end s"),
    ("e2e_p95_s", "e2e p95 s"),
    ("rss_mb", "RSS +MB"),
    ("size_mb", "size MB"),
]


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear between the closest ranks."""
    values = sorted(values)
    if not values:
        return 0.0
    k = (len(values) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


@dataclass
class RunSample:
    prompt_tokens: int
    completion_tokens: int
    ttft_s: float
    total_s: float
    started: float = 0.0

    @property
    def tpot_s(self) -> float | None:
        if self.completion_tokens < 2:
            return None
        return (self.total_s - self.ttft_s) / (self.completion_tokens - 1)


@dataclass
class SweepPoint:
    users: int
    requests: int
    aggregate_tok_s: float
    mean_ttft_s: float
    p95_ttft_s: float
    max_in_flight: int = 0


@dataclass
class TargetResult:
    target_id: str
    label: str
    backend: str
    status: str = "pending"  # ok | failed | cancelled
    error: str | None = None
    load_s: float = 0.0
    size_mb: float = 0.0
    rss_mb: float = 0.0
    runs: list[RunSample] = field(default_factory=list)
    sweep: list[SweepPoint] = field(default_factory=list)
    sample_answer: str = ""

    def summary(self) -> dict[str, float | None]:
        if not self.runs:
            return {key: None for key, _ in METRICS}
        ttft = [r.ttft_s for r in self.runs]
        tpot = [r.tpot_s for r in self.runs if r.tpot_s]
        e2e = [r.total_s for r in self.runs]
        prefill = [r.prompt_tokens / r.ttft_s for r in self.runs if r.ttft_s > 0]
        return {
            "load_s": self.load_s,
            "ttft_ms": statistics.mean(ttft) * 1000,
            "ttft_p50_ms": percentile(ttft, 50) * 1000,
            "ttft_p95_ms": percentile(ttft, 95) * 1000,
            "tpot_ms": statistics.mean(tpot) * 1000 if tpot else None,
            "decode_tok_s": (1 / statistics.mean(tpot)) if tpot else None,
            "prefill_tok_s": statistics.mean(prefill) if prefill else None,
            "e2e_s": statistics.mean(e2e),
            "e2e_p95_s": percentile(e2e, 95),
            "rss_mb": self.rss_mb or None,
            "size_mb": self.size_mb or None,
            "prompt_tokens": statistics.mean(r.prompt_tokens for r in self.runs),
            "completion_tokens": statistics.mean(r.completion_tokens for r in self.runs),
        }


def machine_info() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        flags = next((ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags")), "")
        isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile") if f" {f}" in flags]
    except OSError:
        isa = []
    mem_gb = 0.0
    try:
        mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        pass
    libs = {}
    for pkg in ("openvino", "openvino-genai", "llama-cpp-python", "torch", "transformers", "gradio"):
        try:
            libs[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "isa": isa,
        "memory_gb": round(mem_gb, 1),
        "python": platform.python_version(),
        "os": platform.platform(),
        "libraries": libs,
    }


@dataclass
class BenchReport:
    machine: dict
    config: dict
    results: list[TargetResult] = field(default_factory=list)
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    format_version: int = REPORT_FORMAT

    # -- export -----------------------------------------------------------------
    def to_dict(self) -> dict:
        d = asdict(self)
        for r, res in zip(d["results"], self.results):
            r["summary"] = res.summary()
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def save_json(self, path: Path) -> None:
        atomic_write_text(Path(path), self.to_json() + "\n")

    @classmethod
    def from_json(cls, text: str) -> BenchReport:
        d = json.loads(text)
        if d.get("format_version") != REPORT_FORMAT:
            raise ValueError(f"benchmark report format {d.get('format_version')!r} is not {REPORT_FORMAT}")
        results = []
        for r in d["results"]:
            r = {k: v for k, v in r.items() if k != "summary"}
            r["runs"] = [RunSample(**x) for x in r["runs"]]
            r["sweep"] = [SweepPoint(**x) for x in r["sweep"]]
            results.append(TargetResult(**r))
        return cls(
            machine=d["machine"],
            config=d["config"],
            results=results,
            created_at=d["created_at"],
            format_version=d["format_version"],
        )

    def rows(self) -> list[list]:
        """One row per target: target, backend, status, metrics..., aggregate tok/s per user count."""
        users = self.config.get("users", [])
        out = []
        for r in self.results:
            s = r.summary()
            sweep = {p.users: p for p in r.sweep}
            row = [r.label, r.backend, r.status if r.status != "failed" else f"failed: {r.error}"]
            row += [None if s.get(k) is None else round(s[k], 2) for k, _ in METRICS]
            row += [round(sweep[u].aggregate_tok_s, 1) if u in sweep else None for u in users]
            row += [round(sweep[u].p95_ttft_s * 1000) if u in sweep else None for u in users]
            out.append(row)
        return out

    def headers(self) -> list[str]:
        users = self.config.get("users", [])
        return (
            ["target", "backend", "status"]
            + [t for _, t in METRICS]
            + [f"tok/s @{u} users" for u in users]
            + [f"TTFT p95 ms @{u} users" for u in users]
        )

    def by_measure(self) -> tuple[list[str], list[list]]:
        """The table turned on its side for the screen: one row per measure, one column per target.
        A few columns fit the Compare tab's width, and a phone's; a row per target with its twenty
        measures does not (the files keep that shape: one row per target is what tools read)."""
        headers, rows = self.headers(), self.rows()
        columns = ["measure"] + [str(row[0]) for row in rows]
        return columns, [
            [name] + ["" if row[i] is None else row[i] for row in rows] for i, name in enumerate(headers) if i
        ]

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(self.headers())
        w.writerows(self.rows())
        return buf.getvalue()

    def to_markdown(self) -> str:
        def cell(v):
            return "" if v is None else str(v).replace("|", "/")

        lines = ["| " + " | ".join(self.headers()) + " |", "|" + "---|" * len(self.headers())]
        lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in self.rows()]
        m = self.machine
        lines += [
            "",
            f"Machine: {m.get('cpu')} ({m.get('cores')} cores, {', '.join(m.get('isa', []))}), "
            f"{m.get('memory_gb')} GB; " + ", ".join(f"{k} {v}" for k, v in m.get("libraries", {}).items()),
            f"Config: {json.dumps(self.config)}; {self.created_at}",
        ]
        return "\n".join(lines) + "\n"
