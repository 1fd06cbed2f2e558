"""`python -m quantize`: help, bad sources and the registry it built."""

import json
import subprocess
import sys

import pytest

from tests.conftest import DEFAULT_LLM, ROOT


def run_quantize(*args, models_dir=None):
    cmd = [sys.executable, "-m", "quantize"]
    if models_dir is not None:
        cmd += ["--models-dir", str(models_dir)]
    return subprocess.run(cmd + list(args), cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_help_lists_every_subcommand():
    out = run_quantize("--help")
    assert out.returncode == 0
    for sub in ("defaults", "fetch", "export-llm", "export-embedding", "list", "verify", "ovms-config"):
        assert sub in out.stdout
    export_help = run_quantize("export-llm", "--help").stdout
    for flag in ("--weight-format", "--sym", "--asym", "--group-size", "--ratio", "--from-hub"):
        assert flag in export_help


@pytest.mark.parametrize(
    "content,expected",
    [
        (b"%PDF-1.4 not a model", "not a GGUF model file"),
        (b"", "not a GGUF model file"),
    ],
)
def test_non_model_file_is_refused_with_one_sentence(tmp_path, content, expected):
    bad = tmp_path / "weights.gguf"
    bad.write_bytes(content)
    out = run_quantize("export-llm", str(bad), models_dir=tmp_path / "models")
    assert out.returncode == 2
    assert expected in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def test_missing_source_and_non_model_folder(tmp_path):
    out = run_quantize("export-llm", str(tmp_path / "missing.gguf"), models_dir=tmp_path / "m")
    assert out.returncode == 2 and "does not exist" in out.stderr
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "notes.txt").write_text("hello")
    out = run_quantize("export-llm", str(tmp_path / "folder"), models_dir=tmp_path / "m")
    assert out.returncode == 2 and "is not a model" in out.stderr and "Traceback" not in out.stderr


def test_list_on_missing_registry_is_a_clear_error(tmp_path):
    out = run_quantize("list", models_dir=tmp_path / "nowhere")
    assert out.returncode == 2
    assert "does not exist" in out.stderr and "Traceback" not in out.stderr


def test_built_registry_verifies_and_serves_ovms(registry_dir):
    out = run_quantize("verify", models_dir=registry_dir)
    assert out.returncode == 0, out.stdout + out.stderr
    config = json.loads((registry_dir / "config.json").read_text())
    # The current form (mediapipe_config_list is deprecated in OVMS): graphs in model_config_list.
    assert set(config) == {"model_config_list"}
    assert {"config": {"name": DEFAULT_LLM, "base_path": DEFAULT_LLM}} in config["model_config_list"]
    graph = (registry_dir / DEFAULT_LLM / "graph.pbtxt").read_text()
    assert "HttpLLMCalculator" in graph and 'models_path: "./"' in graph
    assert graph.startswith("# OVMS_GRAPH_QUEUE_MAX_SIZE: AUTO\n")
    assert 'input_side_packet: "LLM_NODE_EXECUTION_CONTEXTS:llm_ctx"' in graph


def test_manifest_records_source_compression_and_quality(registry_dir):
    from quantize.checks import QUALITY_BOUNDS

    manifest = json.loads((registry_dir / DEFAULT_LLM / "manifest.json").read_text())
    assert manifest["format_version"] == 1
    assert manifest["source"]["type"] == "gguf" and len(manifest["source"]["sha256"]) == 64
    assert manifest["weights"] == {"format": "int4", "sym": True, "group_size": 64, "ratio": 1.0}
    q = manifest["quality"]
    bounds = QUALITY_BOUNDS["int4"]
    # The figure must be a real measurement (not 1.0 exactly, which would mean no compression)
    # and inside the documented int4 bound.
    assert 1.0 < q["perplexity_ratio"] <= bounds["max_ppl_ratio"]
    assert bounds["min_top1_agreement"] <= q["top1_agreement"] < 1.0
    assert manifest["checks"]["tokenizer"]["identical_ids"] is True
    assert manifest["checks"]["generation"]["stopped_at_eos"] is True
    assert manifest["size_bytes"] < 150e6  # int4 of a 135M model; fp16 would be ~270 MB


def test_static_embedder_is_a_lookup_table_checked_against_its_teacher(registry_dir):
    import numpy as np
    import openvino as ov

    from quantize.export_embedding import MIN_STATIC_AGREEMENT
    from webapp.rag.embedder import Embedder
    from webapp.registry import load_entry

    entry = load_entry(registry_dir / "all-minilm-l6-v2-static")
    m = entry.manifest
    assert m["kind"] == "embedding" and m["weights"]["format"] == "static-fp16"
    q = m["quality"]
    assert q["passed"] and q["mean_cosine"] >= 0.9999
    assert MIN_STATIC_AGREEMENT <= q["teacher_agreement"] < 1.0  # a real, imperfect agreement
    assert m["embedding"]["dimension"] == 256 and 0 < m["embedding"]["min_similarity"] < 1
    ops = {op.get_type_name() for op in ov.Core().read_model(entry.path / "openvino_model.xml").get_ops()}
    assert "Gather" in ops and "MatMul" not in ops  # no transformer layers at run time
    emb = Embedder(entry)
    a, b, c = emb.embed_documents(
        ["The cat sat on the mat.", "A cat was sitting on a rug.", "Quarterly revenue grew by four percent."]
    )
    assert abs(float(np.linalg.norm(a)) - 1) < 1e-4
    assert float(a @ b) > float(a @ c)  # related sentences are closer than unrelated ones


def test_similarity_agreement_measures_rank_agreement():
    import numpy as np

    from quantize.static_embedding import similarity_agreement

    x = np.random.default_rng(0).normal(size=(12, 8))
    assert similarity_agreement(x, x) == pytest.approx(1.0)
    assert similarity_agreement(x, x * 3.0) == pytest.approx(1.0)  # scale does not matter
    assert abs(similarity_agreement(x, np.random.default_rng(1).normal(size=(12, 8)))) < 0.5


def test_static_and_int8_are_exclusive():
    out = run_quantize("export-embedding", "default", "--static", "--int8")
    assert out.returncode == 2 and "not allowed with argument" in out.stderr


@pytest.mark.slow
def test_int8_embedding_export_really_has_int8_weights(registry_dir, tmp_path):
    """`--int8` once registered fp32 weights under an int8 manifest (optimum-intel ignored the
    config it was given); the weights must be int8 constants, about a quarter of the fp32 file."""
    import openvino as ov

    source = registry_dir / ".sources" / "all-MiniLM-L6-v2"
    if not source.is_dir():
        pytest.skip("the MiniLM source folder is not in the registry (make models fetches it)")
    out = run_quantize("export-embedding", str(source), "--int8", "--name", "minilm-int8", models_dir=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    entry = tmp_path / "minilm-int8"
    manifest = json.loads((entry / "manifest.json").read_text())
    assert manifest["weights"]["format"] == "int8" and manifest["quality"]["passed"]
    fp32 = registry_dir / "all-minilm-l6-v2" / "openvino_model.bin"
    assert (entry / "openvino_model.bin").stat().st_size < 0.4 * fp32.stat().st_size
    types = {
        op.get_output_element_type(0).get_type_name()
        for op in ov.Core().read_model(entry / "openvino_model.xml").get_ops()
        if op.get_type_name() == "Constant"
    }
    assert "u8" in types or "i8" in types, types
