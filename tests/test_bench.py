"""The measurement engine on the real SmolLM2: sane figures, real concurrency, exports, failures."""

import json

import pytest

from webapp.bench.engine import BenchConfig, Hooks, run_benchmark, token_counter
from webapp.bench.prompts import prompt_for
from webapp.bench.report import BenchReport
from webapp.bench.targets import Target, available_targets
from webapp.errors import ModelNotAvailable

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def report(settings_factory):
    settings = settings_factory()
    targets = {t.id: t for t in available_targets(settings)}

    def broken():
        raise ModelNotAvailable("The model broken-model is not in the registry.")

    chosen = [
        targets["openvino:smollm2-135m-instruct-int4"],
        Target("openvino:broken-model", "broken-model · OpenVINO", "openvino", broken),
    ]
    texts = {}
    cfg = BenchConfig(profile="chat", runs=2, warmup=1, max_new_tokens=24, users=(1, 2, 4))
    rep = run_benchmark(
        chosen, cfg, Hooks(on_text=lambda tid, t: texts.__setitem__(tid, t)), count_tokens=token_counter(settings)
    )
    rep.streamed = texts
    return rep


def test_real_run_has_positive_timings_and_true_token_counts(report, backend):
    ok = report.results[0]
    assert ok.status == "ok" and ok.load_s > 0
    s = ok.summary()
    assert s["ttft_ms"] > 0 and s["tpot_ms"] > 0 and s["decode_tok_s"] > 0 and s["prefill_tok_s"] > 0
    assert s["rss_mb"] and s["size_mb"] > 50
    # tokens counted by the stream match the tokenizer on the final answer (+1 for the eos id)
    n = ok.runs[-1].completion_tokens
    assert n in (backend.count_tokens(ok.sample_answer), backend.count_tokens(ok.sample_answer) + 1)
    assert report.streamed[ok.target_id] == ok.sample_answer


def test_concurrency_sweep_really_runs_requests_at_once(report):
    sweep = {p.users: p for p in report.results[0].sweep}
    assert sorted(sweep) == [1, 2, 4]
    assert sweep[4].requests == 4
    # at some moment all of them were in flight together
    assert sweep[4].max_in_flight == 4 and sweep[2].max_in_flight == 2 and sweep[1].max_in_flight == 1
    assert all(p.aggregate_tok_s > 0 for p in sweep.values())


def test_failing_target_is_reported_in_its_row(report):
    bad = report.results[1]
    assert bad.status == "failed" and "not in the registry" in bad.error
    rows = report.rows()
    assert rows[1][2].startswith("failed: The model broken-model")
    assert rows[0][2] == "ok"


def test_the_screen_table_has_a_row_per_measure_and_a_column_per_target(report):
    columns, rows = report.by_measure()
    assert columns == ["measure"] + [r.label for r in report.results]
    assert [row[0] for row in rows] == report.headers()[1:]
    status = next(row for row in rows if row[0] == "status")
    assert status[1] == "ok" and status[2].startswith("failed: The model broken-model")
    assert all(len(row) == len(columns) and None not in row for row in rows)  # empty cells are ""


def test_results_export_and_reload(report, tmp_path):
    path = tmp_path / "r.json"
    report.save_json(path)
    again = BenchReport.from_json(path.read_text())
    assert again.rows() == report.rows()
    assert json.loads(path.read_text())["results"][0]["summary"]["ttft_ms"] > 0
    csv_lines = report.to_csv().strip().splitlines()
    assert csv_lines[0].startswith("target,backend,status") and len(csv_lines) == 3
    md = report.to_markdown()
    assert md.startswith("| target |") and "Machine:" in md and report.machine["cores"] >= 1


def test_prompts_differ_every_run():
    for profile in ("chat", "rag"):
        prompts = [prompt_for(profile, i) for i in range(20)]
        assert len(set(p[:40] for p in prompts)) == 20  # different from the first tokens on
    assert len(prompt_for("rag", 1)) > 4000
