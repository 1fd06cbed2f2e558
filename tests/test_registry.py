"""Registry reading: missing, corrupt and incomplete folders give one sentence, never a crash."""

import json

import pytest

from webapp.errors import RegistryError
from webapp.registry import MANIFEST_FORMAT_VERSION, load_entry, scan, verify_files, write_manifest


def make_model(root, name, kind="llm", **manifest):
    folder = root / name
    folder.mkdir(parents=True)
    for f in ("openvino_model.xml", "openvino_model.bin", "openvino_tokenizer.xml", "openvino_detokenizer.xml"):
        (folder / f).write_bytes(b"x")
    write_manifest(folder, {"name": name, "kind": kind, **manifest})
    return folder


def test_missing_registry_is_one_sentence(tmp_path):
    with pytest.raises(RegistryError) as err:
        scan(tmp_path / "nope")
    assert "does not exist" in err.value.user_message
    assert err.value.user_message.count(".") >= 1 and "\n" not in err.value.user_message


def test_registry_that_is_a_file(tmp_path):
    f = tmp_path / "models"
    f.write_text("not a folder")
    with pytest.raises(RegistryError, match="is a file"):
        scan(f)


def test_bad_folders_are_reported_and_good_ones_kept(tmp_path):
    make_model(tmp_path, "good")
    (tmp_path / "unfinished").mkdir()
    corrupt = make_model(tmp_path, "corrupt")
    (corrupt / "manifest.json").write_text("{ this is not json")
    future = make_model(tmp_path, "future")
    data = json.loads((future / "manifest.json").read_text())
    data["format_version"] = MANIFEST_FORMAT_VERSION + 1
    (future / "manifest.json").write_text(json.dumps(data))
    incomplete = make_model(tmp_path, "incomplete")
    (incomplete / "openvino_model.bin").unlink()
    (tmp_path / ".sources").mkdir()  # hidden folders are not models

    result = scan(tmp_path)
    assert [m.name for m in result.models] == ["good"]
    joined = " | ".join(result.problems)
    assert len(result.problems) == 4, joined
    assert "did not finish" in joined and "corrupt" in joined
    assert "format" in joined and "openvino_model.bin missing" in joined


def test_manifest_is_written_atomically_with_version(tmp_path):
    folder = make_model(tmp_path, "m", kind="embedding")
    entry = load_entry(folder)
    assert entry.kind == "embedding"
    assert entry.manifest["format_version"] == MANIFEST_FORMAT_VERSION
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_verify_detects_changed_file(tmp_path):
    from webapp.registry import sha256_file

    folder = make_model(tmp_path, "m")
    files = {p.name: sha256_file(p) for p in folder.iterdir() if p.name != "manifest.json"}
    write_manifest(folder, {"name": "m", "kind": "llm", "files": files})
    entry = load_entry(folder)
    assert verify_files(entry) == []
    (folder / "openvino_model.bin").write_bytes(b"tampered")
    problems = verify_files(entry)
    assert len(problems) == 1 and "openvino_model.bin" in problems[0]


def test_published_registry_files_are_readable_by_another_user(tmp_path):
    """OVMS runs as another uid on the model volume: the files the registry writes must be world-readable,
    and verification says so when one is not. As root (CI), an unprivileged process really reads them."""
    import os
    import shutil
    import subprocess
    import tempfile
    from pathlib import Path

    from quantize.ovms import write_graph, write_ovms_config
    from webapp.registry import sha256_file

    root = Path(tempfile.mkdtemp(prefix="registry-"))  # /tmp itself, so another user can reach it
    try:
        root.chmod(0o755)
        folder = make_model(root, "m")
        write_graph(folder, "m")
        files = {p.name: sha256_file(p) for p in folder.iterdir() if p.name != "manifest.json"}
        write_manifest(folder, {"name": "m", "kind": "llm", "files": files})
        write_ovms_config(root)
        for path in (folder / "manifest.json", folder / "graph.pbtxt", root / "config.json"):
            assert path.stat().st_mode & 0o777 == 0o644, path
        assert verify_files(load_entry(folder)) == []
        python = shutil.which("python3", path="/usr/bin:/bin")
        if os.geteuid() == 0 and python:  # drop to nobody and read everything OVMS reads
            reader = subprocess.run(
                [
                    python,
                    "-c",
                    "import pathlib, sys; [p.read_bytes() for p in pathlib.Path(sys.argv[1]).rglob('*') "
                    "if p.is_file()]; print('read')",
                    str(root),
                ],
                user=65534,
                group=65534,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert reader.returncode == 0 and "read" in reader.stdout, reader.stderr
        (folder / "graph.pbtxt").chmod(0o600)
        problems = verify_files(load_entry(folder))
        assert len(problems) == 1 and "graph.pbtxt is not readable by other users (mode 0o600)" in problems[0]
        from webapp.registry import publish

        assert publish(root) == 1 and verify_files(load_entry(folder)) == []
    finally:
        shutil.rmtree(root, ignore_errors=True)
