"""python -m webapp: the DocChat server and command-line tools over the same data folder.

    python -m webapp serve                     # http://127.0.0.1:8080
    python -m webapp serve --host 0.0.0.0 --port 8080 --models-dir /models --data-dir /data
    python -m webapp index paper.pdf more/*.pdf --collection papers
    python -m webapp search "what is the pre-training objective?" --collection papers --k 5 --json
    python -m webapp ask "what is the pre-training objective?" --collection papers --json
    python -m webapp reembed --model all-minilm-l6-v2   # switch the folder's embedding model
    python -m webapp sync ~/team-docs --collection team        # the collection becomes equal to the folder
    python -m webapp sync gs://bucket/docs --collection team --watch --interval 300
    python -m webapp migrate --to postgresql://docchat@db/docchat --files-url gs://bucket/docchat  # several pods
    python -m webapp users add alice --role admin      # the first admin (password from a prompt or stdin)
    python -m webapp users token alice --revoke        # end alice's API tokens (--list shows them)
    python -m webapp serve --host 0.0.0.0 --auth password
    python -m webapp ask "..." --collection papers --user alice   # the CLI acts for a user when sign-in is on

Sign-in (docs/users.md): none on 127.0.0.1 by default, password elsewhere, or header behind an
identity-aware proxy; roles viewer / member / admin; collections private, shared or for everyone.

Every flag also reads from an environment variable (DOCCHAT_HOST, DOCCHAT_PORT,
DOCCHAT_MODELS_DIR, ...); flags win.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from webapp.errors import UserError
from webapp.settings import Settings


def _settings_from(args) -> Settings:
    overrides = {k: v for k, v in vars(args).items() if k in Settings.model_fields and v is not None}
    return Settings(**overrides)


def cmd_serve(args) -> int:
    import uvicorn

    from webapp.server import create_app

    settings = _settings_from(args)
    app = create_app(settings)
    print(f"DocChat on http://{settings.host}:{settings.port}/  (models: {settings.models_dir.resolve()})", flush=True)
    # proxy_headers off: uvicorn would rewrite the client address from X-Forwarded-For sent through
    # any local connection (kubectl port-forward arrives from 127.0.0.1), letting a client pose as
    # a trusted proxy; the auth gate reads forwarded headers only from DOCCHAT_TRUSTED_PROXIES.
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        proxy_headers=False,
        timeout_graceful_shutdown=5,
    )
    return 0


def _actor(args, settings: Settings):
    """Whom a CLI command acts for: --user NAME, an API token (DOCCHAT_API_TOKEN or --token-file), or,
    with auth none, the local operator. The same rules then apply as in the web app."""
    import os

    from webapp.auth.access import LOCAL, Actor
    from webapp.auth.users import UserStore

    token = os.environ.get("DOCCHAT_API_TOKEN")
    if getattr(args, "token_file", None):
        try:
            token = Path(args.token_file).read_text().strip()
        except OSError as exc:
            raise UserError(f"The token file {args.token_file} could not be read ({exc.strerror}).") from exc
    if getattr(args, "user", None) or token:
        users = UserStore.for_settings(settings)
        try:
            user = users.user_for_token(token) if token else users.get(args.user)
        finally:
            users.close()
        if user is None:
            raise UserError("That API token is not valid (or its user is disabled).")
        if user.disabled:
            raise UserError(f"User {user.name} is disabled.")
        return Actor(user.name, user.role)
    if settings.auth_mode != "none":
        raise UserError(
            f"This data folder's server signs users in (auth {settings.auth_mode}); say whom this "
            "command acts for with --user NAME, --token-file FILE or DOCCHAT_API_TOKEN."
        )
    return LOCAL


def _stderr_progress():
    """progress(fraction, what) for long commands: one line on stderr, rewritten in place when it changes."""
    last = [""]

    def progress(fraction: float, what: str) -> None:
        line = f"\r[{int(fraction * 100):3d}%] {what[:70]:70s}"
        if line != last[0]:
            last[0] = line
            print(line, end="", file=sys.stderr, flush=True)

    return progress


def _print_json(obj) -> None:
    import json

    print(json.dumps(obj, indent=2, ensure_ascii=False))


def cmd_index(args) -> int:
    from webapp.documents.service import DocumentService
    from webapp.readers.registry import format_for

    settings = _settings_from(args)
    actor = _actor(args, settings)
    docs = DocumentService(settings)
    collection = args.collection or settings.default_collection
    files = []
    for p in args.paths:
        path = Path(p)
        # a folder: every file of a format the app reads, in its subfolders too
        files += sorted(f for f in path.rglob("*") if f.is_file() and format_for(f.name)) if path.is_dir() else [path]
    password = _pdf_password(args)
    results = docs.add_files(collection, [(f, f.name) for f in files], actor)
    for r in results:
        print(
            f"{'refused' if r.error else 'duplicate' if r.duplicate else 'added':9s} {r.label}"
            + (f": {r.error}" if r.error else "")
        )
    ids = [r.document.id for r in results if r.document]
    # With a password the given files are indexed again even if they were added before
    # (typically: they failed as encrypted); without one, only what is queued.
    report = docs.reindex(
        collection,
        ids if password is not None else [],
        progress=_stderr_progress(),
        passwords={i: password for i in ids} if password is not None else None,
        actor=actor,
    )
    print(file=sys.stderr)
    for d in report.indexed:
        if d.reason:  # OCR'd pages, pages without text, skipped figures
            print(f"note      {d.label}: {d.reason}")
    print(report.summary())
    docs.close()
    return 0 if not report.failed and not any(r.error for r in results) else 1


def cmd_sync(args) -> int:
    import json
    import signal
    import threading

    from webapp.documents.service import DocumentService
    from webapp.documents.sync import SyncReport, SyncService

    settings = _settings_from(args)
    actor = _actor(args, settings)
    docs = DocumentService(settings)
    sync = SyncService(docs)
    collection = args.collection or settings.default_collection
    failed = [False]

    def show(report: SyncReport) -> None:
        print(file=sys.stderr)
        if args.json:
            print(json.dumps(report.as_json(limit=None), ensure_ascii=False), flush=True)
        else:
            print("\n".join(report.lines()), flush=True)
        failed[0] = bool(report.error or report.failed)

    try:
        if not args.watch:
            show(
                sync.run(
                    collection, args.source, actor, _stderr_progress(), operator=True, allow_empty=args.allow_empty
                )
            )
            return 1 if failed[0] else 0
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            sync.watch(collection, args.source, args.interval, stop, show, actor, allow_empty=args.allow_empty)
        except KeyboardInterrupt:
            pass
        return 0
    finally:
        docs.close()


def _pdf_password(args) -> str | None:
    """The password for encrypted PDFs: from a file, stdin (-) or DOCCHAT_PDF_PASSWORD, never argv
    (any user on the machine can read another's command line with `ps`)."""
    import os

    if args.password is not None:
        raise UserError(
            "--password would show the password to every user of this machine (ps); use "
            "--password-file FILE, --password-file - (stdin) or DOCCHAT_PDF_PASSWORD."
        )
    if args.password_file:
        try:
            text = sys.stdin.read() if str(args.password_file) == "-" else Path(args.password_file).read_text()
        except OSError as exc:
            raise UserError(f"The password file {args.password_file} could not be read ({exc.strerror}).") from exc
        return text.rstrip("\r\n")
    return os.environ.get("DOCCHAT_PDF_PASSWORD")


def cmd_reembed(args) -> int:
    from webapp.documents.service import DocumentService

    docs = DocumentService(_settings_from(args))
    before = docs.embedding_model_name()
    started = time.perf_counter()
    count = docs.reembed(args.model, progress=_stderr_progress(), actor=_actor(args, docs.settings))
    print(file=sys.stderr)
    print(f"Re-embedded {count} chunks from {before} to {args.model} in {time.perf_counter() - started:.1f} s.")
    docs.close()
    return 0


def cmd_search(args) -> int:
    from webapp.documents.service import DocumentService

    settings = _settings_from(args)
    actor = _actor(args, settings)
    docs = DocumentService(settings)
    passages = docs.search(
        args.collection or settings.default_collection,
        args.question,
        k=args.k,
        mode=args.mode,
        actor=actor,
        documents=args.document,
    )
    if args.json:
        _print_json([p.as_json(n) for n, p in enumerate(passages, start=1)])
    else:
        if not passages:
            print("Nothing relevant found.")
        for n, p in enumerate(passages, start=1):
            print(f"[{n}] {p.document}, {p.where}  (score {p.score:.4f}, similarity {p.similarity:.2f})")
            print("    " + p.text[:300].replace("\n", " ") + ("…" if len(p.text) > 300 else ""))
    docs.close()
    return 0


def cmd_ask(args) -> int:
    from webapp.chat.answering import Failed, Question, Token, answer_json
    from webapp.chat.followups import conversation
    from webapp.rag.prompt import citation_line
    from webapp.services import build_services

    settings = _settings_from(args)
    actor = _actor(args, settings)
    services = build_services(settings)
    try:
        answer = services.answers.start(
            Question(
                args.question,
                conversation(args.previous or [], args.previous_answer),
                args.collection or settings.default_collection,
                args.model or services.catalog.default_choice(),
                args.answer_mode,
                services.chat.params(args.max_new_tokens, None),
                actor=actor,
                documents=tuple(args.document or ()),
                task=args.task,
            )
        )
        for event in answer:
            if isinstance(event, Token) and not args.json:
                print(event.text, end="", flush=True)
            elif isinstance(event, Failed) and not args.json:
                print(f"\n⚠ {event.message}", file=sys.stderr)
    except UserError as exc:
        if not args.json:
            raise
        _print_json({"answer": "", "error": exc.user_message})  # JSON callers get the reason, not nothing
        return 1
    finally:
        services.close()
    if args.json:
        out = answer_json(answer)
        out["passages"] = [p.as_json(n) for n, p in enumerate(answer.sources, start=1)]
        out["tokens"] = answer.stats.completion_tokens
        _print_json(out)
        return 1 if answer.error else 0
    print()
    if answer.sources:
        print("Sources: " + citation_line(answer.sources))
    for e in answer.evidence:
        print(f"Evidence: “{e.text}” ({e.document}, p. {e.page}, score {e.score:.2f})")
    if answer.left_out:
        print("Left out (not in the sources): " + " | ".join(answer.left_out))
    return 1 if answer.error else 0


def cmd_bench(args) -> int:
    from webapp.bench.engine import BenchConfig, Hooks
    from webapp.bench.service import BenchService
    from webapp.llm.catalog import ModelCatalog

    settings = _settings_from(args)
    catalog = ModelCatalog(settings).refresh() if settings.remote_endpoints else None
    bench = BenchService(settings, catalog)
    try:
        if args.list:
            for t in bench.targets():
                print(f"{t.id:55s} {t.label}")
            return 0
        wanted = [x.strip() for x in (args.targets or "").split(",") if x.strip()]
        targets = bench.select(wanted, default_if_empty=True)
        if args.quick:
            cfg = BenchConfig(profile=args.profile or "chat", runs=2, warmup=1, max_new_tokens=32, users=(1, 2))
        else:
            cfg = BenchConfig(
                profile=args.profile or "chat",
                runs=args.runs,
                warmup=1,
                max_new_tokens=args.max_new_tokens,
                users=tuple(int(u) for u in args.users.split(",")),
            )
        report = bench.run([t.id for t in targets], cfg, Hooks(progress=_stderr_progress()), session="cli")
        print(file=sys.stderr)
        print(report.to_markdown())
        if args.json:
            report.save_json(args.json)
            print(f"wrote {args.json}")
        return 0 if all(r.status == "ok" for r in report.results) else 1
    finally:
        if catalog:
            catalog.close()


def cmd_backup(args) -> int:
    from webapp.documents.backup import export_store, import_store

    settings = _settings_from(args)
    if args.action == "export":
        info = export_store(settings.data_dir, args.archive)
        print(
            f"exported {info['documents']} documents, {info['chunks']} chunks, {info['files']} files to {args.archive}"
        )
    else:
        info = import_store(args.archive, settings.data_dir)
        print(
            f"imported {info.get('documents', '?')} documents into {settings.data_dir}; "
            "search indexes are rebuilt when the app or CLI next opens the store"
        )
    return 0


def cmd_migrate(args) -> int:
    from webapp.store_migration import migrate_to_postgres

    settings = _settings_from(args)
    report = migrate_to_postgres(Path(settings.data_dir), args.to, settings.files_url, progress=print)
    print(report.summary())
    print(
        "Next: set DOCCHAT_DATABASE_URL to that database (and DOCCHAT_FILES_URL, if you gave one) on every "
        "replica; keep this data folder until the replicas serve (docs/capacity.md)."
    )
    return 0


def _read_new_password(name: str) -> str:
    """A new password from a prompt (typed twice) or, when stdin is not a terminal, its first line.
    Never from argv: any user of the machine can read another's command line with `ps`."""
    import getpass

    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(f"New password for {name}: ")
    if first != getpass.getpass("Again: "):
        raise UserError("The two passwords differ; nothing was changed.")
    return first


def _token_id(text: str) -> int:
    if not text.isdigit():
        raise UserError("--revoke takes a token id (`users token NAME --list` shows them) or 'all'.")
    return int(text)


def cmd_users(args) -> int:
    from webapp.auth.access import LOCAL
    from webapp.auth.admin import UserAdmin
    from webapp.auth.users import UserStore

    settings = _settings_from(args)
    store = UserStore.for_settings(settings)
    # The operator at the CLI acts as an admin, through the same service as the Users tab (so the
    # same rules hold: e.g. the last admin cannot be demoted, disabled or removed).
    admin = UserAdmin(store)
    try:
        if args.action == "list":
            users = admin.list(LOCAL)
            if not users:
                print("No users yet: `python -m webapp users add NAME --role admin` creates the first admin.")
            for u in users:
                state = "disabled" if u.disabled else "active"
                print(
                    f"{u.name:32s} {u.role:7s} {state:8s} tokens {u.tokens:<3d} created {u.created_at[:16]}  "
                    f"last sign-in {(u.last_login_at or 'never')[:16]}"
                )
            return 0
        if not args.name:
            raise UserError(f"`users {args.action}` needs a user name.")
        if args.action == "add":
            user = admin.add(LOCAL, args.name, args.role or "member", _read_new_password(args.name))
            print(f"added {user.name} ({user.role})")
        elif args.action == "passwd":
            store.get(args.name)  # fail before asking for a password
            ended = admin.set_password(LOCAL, args.name, _read_new_password(args.name))
            print(f"password of {args.name} changed; {ended} session(s) and API token(s) revoked")
        elif args.action == "role":
            if not args.role:
                raise UserError("`users role NAME --role ROLE` needs --role admin, member or viewer.")
            user = admin.set_role(LOCAL, args.name, args.role)
            print(f"{user.name} is now {user.role}")
        elif args.action in ("disable", "enable"):
            user = admin.set_disabled(LOCAL, args.name, args.action == "disable")
            print(f"{user.name} is now {'disabled' if user.disabled else 'enabled'}")
        elif args.action == "remove":
            print(f"removed {admin.remove(LOCAL, args.name).name} and their API tokens")
        elif args.action == "token" and args.list:
            tokens = admin.tokens(LOCAL, args.name)
            if not tokens:
                print(f"{args.name} has no API tokens")
            for t in tokens:
                print(f"{t.id:<6d} created {t.created_at[:16]}  last used {(t.last_used_at or 'never')[:16]}")
        elif args.action == "token" and args.revoke:
            which = None if args.revoke == "all" else _token_id(args.revoke)
            ended = admin.revoke_tokens(LOCAL, args.name, which)
            print(f"revoked {ended} API token(s) of {args.name}")
        elif args.action == "token":
            token = admin.issue_token(LOCAL, args.name)
            print(token)
            print(f"(API token for {args.name}: shown this once; only its hash is stored)", file=sys.stderr)
        return 0
    finally:
        store.close()


def cmd_cluster(args) -> int:
    from webapp.cluster import Cluster, api_client

    settings = _settings_from(args)
    namespace = args.namespace or settings.namespace
    cluster = Cluster(namespace, api_client(args.kubeconfig, args.context))
    if args.action == "status":
        print(cluster.status().render())
    elif args.action == "down":
        changes = cluster.down()
        print("\n".join(changes) or "already scaled to zero")
        print("Volumes are kept; `cluster up` restores the replicas.")
    else:
        print("\n".join(cluster.up(wait=not args.no_wait, timeout_s=args.timeout)) or "already up")
        print(cluster.status().render())
    return 0


def _add_identity(p: argparse.ArgumentParser) -> None:
    p.add_argument("--user", help="act as this user, with their role and collections (needed when sign-in is on)")
    p.add_argument(
        "--token-file",
        type=Path,
        metavar="FILE",
        help="act as the owner of the API token in FILE (or set DOCCHAT_API_TOKEN)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m webapp", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models-dir", type=Path, help="model registry folder (default ./models)")
    parser.add_argument("--data-dir", type=Path, help="documents and index folder (default ./data)")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="start the web UI and health endpoints")
    p.add_argument("--host", help="interface to listen on (default 127.0.0.1; 0.0.0.0 in containers)")
    p.add_argument("--port", type=int, help="port (default 8080)")
    p.add_argument("--default-model", help="registry name of the chat model to preload")
    p.add_argument("--max-new-tokens", type=int, help="default answer length cap (default 512)")
    p.add_argument("--device", help="OpenVINO device (default CPU)")
    p.add_argument(
        "--auth",
        choices=["none", "password", "header"],
        help="sign-in: none (default on 127.0.0.1 only), password (users of `users add`; default "
        "elsewhere), header (an identity-aware proxy names the user; set DOCCHAT_TRUSTED_PROXIES, and behind "
        "Google IAP DOCCHAT_IAP_AUDIENCE)",
    )
    p.add_argument(
        "--insecure-no-auth",
        action="store_true",
        default=None,
        help="allow --auth none on a non-loopback address: everyone who reaches the port is an admin",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("index", help="add PDFs (files or folders) to a collection and index them")
    p.add_argument("paths", nargs="+", help="PDF files or folders (searched recursively for *.pdf)")
    p.add_argument("--collection", help="collection name (default: DOCCHAT_DEFAULT_COLLECTION or 'default')")
    p.add_argument(
        "--password-file",
        type=Path,
        metavar="FILE",
        help="file holding the password for encrypted PDFs among the given files ('-' reads stdin; "
        "or set DOCCHAT_PDF_PASSWORD). Never on the command line: `ps` shows it to everyone",
    )
    p.add_argument("--password", help=argparse.SUPPRESS)  # refused with an explanation
    _add_identity(p)
    p.set_defaults(func=cmd_index)

    p = sub.add_parser(
        "sync",
        help="make a collection equal to a folder or gs://bucket/prefix (new, changed, deleted files)",
        description="Sync a collection with SOURCE, a folder or gs://BUCKET/PREFIX: files new there are added "
        "and indexed, files whose content changed (sha256) are indexed again (the old version stays searchable "
        "until the new one is), files gone from SOURCE are removed, unchanged files are not read again. Only "
        "files of a format DocChat reads count (PDF, .docx, .pptx, .html, .md, .txt, .xlsx); symbolic links are "
        "not followed. SOURCE becomes the collection's source: the Documents tab shows it with the last run, "
        "and the app syncs it again on its own when DOCCHAT_SYNC_INTERVAL_S is set. The summary lists "
        "added / updated / removed / unchanged / failed (with reasons); the exit status is 1 when a file "
        "failed or the source could not be read. Buckets are read with Application Default Credentials "
        "(Workload Identity on GKE); STORAGE_EMULATOR_HOST points at an emulator. docs/documents.md, Sync.",
    )
    p.add_argument("source", metavar="SOURCE", help="a folder, or gs://BUCKET/PREFIX")
    p.add_argument("--collection", help="collection to sync (made if new; default: DOCCHAT_DEFAULT_COLLECTION)")
    p.add_argument(
        "--watch",
        action="store_true",
        help="keep syncing: a run every --interval seconds until Ctrl-C or SIGTERM (folders and buckets are "
        "polled; an unchanged file costs one stat or one listed object, nothing is read)",
    )
    p.add_argument("--interval", type=float, default=60.0, metavar="S", help="seconds between runs with --watch (60)")
    p.add_argument(
        "--allow-empty",
        action="store_true",
        help="let a SOURCE that lists no documents empty the collection (refused by default: an unmounted "
        "volume or a mistyped prefix looks the same)",
    )
    p.add_argument("--json", action="store_true", help="print each run's result as one JSON line")
    _add_identity(p)
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser(
        "reembed",
        help="switch the data folder to another embedding model (re-embeds stored chunks)",
        description="Re-embed every stored chunk with another registered embedding model, "
        "without re-reading the PDFs. Stop the app first (it keeps the old model "
        "loaded and will ask to be restarted).",
    )
    p.add_argument("--model", required=True, help="registry name of the embedding model, e.g. all-minilm-l6-v2")
    _add_identity(p)
    p.set_defaults(func=cmd_reembed)

    p = sub.add_parser("search", help="ranked passages for a question (no LLM)")
    p.add_argument("question")
    p.add_argument("--collection")
    p.add_argument("--k", type=int, default=5, help="number of passages (default 5)")
    p.add_argument("--mode", choices=["hybrid", "dense", "keyword"], default="hybrid")
    p.add_argument(
        "--document",
        action="append",
        metavar="NAME",
        help="search only this document of the collection (its file name as listed; repeatable)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _add_identity(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("ask", help="answer a question from a collection, with cited pages")
    p.add_argument("question")
    p.add_argument("--collection")
    p.add_argument(
        "--document",
        action="append",
        metavar="NAME",
        help="answer only from this document of the collection (its file name as listed; repeatable)",
    )
    p.add_argument(
        "--task",
        choices=["answer", "summarize", "compare", "outline", "overview"],
        help="what to do with the documents (default: read from the question: 'summarize X', 'compare A and B', "
        "'what sections does X have', 'what is in this collection')",
    )
    p.add_argument("--model", help="registry name of the chat model")
    p.add_argument("--max-new-tokens", type=int)
    p.add_argument(
        "--answer-mode",
        choices=["auto", "quote", "brief", "free"],
        help="quote: the sources' sentences only (no model); brief: quotes + a short checked answer; "
        "free: quotes + the model's own text, unsupported sentences marked; auto: quote for small local "
        "models, brief for others (default: DOCCHAT_ANSWER_MODE, auto)",
    )
    p.add_argument(
        "--previous",
        action="append",
        metavar="QUESTION",
        help="an earlier question of the conversation (repeatable, oldest first): resolves 'its', 'that model'",
    )
    p.add_argument(
        "--previous-answer",
        metavar="TEXT",
        help="the answer to the last --previous question: a follow-up that refers back is answered from "
        "the documents it quoted",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _add_identity(p)
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser(
        "bench",
        help="measure TTFT, TPOT, throughput of models and backends side by side",
        description="Loads each target, warms it up, times N runs with a different prompt each, "
        "then runs 1/2/4 concurrent users; prints a Markdown table.",
    )
    p.add_argument("--list", action="store_true", help="list the available targets and exit")
    p.add_argument("--targets", help="comma-separated target ids (default: the default model on OpenVINO)")
    p.add_argument("--profile", choices=["chat", "rag"], help="prompt profile (default chat)")
    p.add_argument("--runs", type=int, default=5, help="measured runs per target (default 5)")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--users", default="1,2,4", help="concurrency sweep (default 1,2,4)")
    p.add_argument("--quick", action="store_true", help="2 runs, 32 tokens, 1-2 users: under a minute")
    p.add_argument("--json", type=Path, help="also write the full report as JSON")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser(
        "backup",
        help="export the documents + index to a .tar.gz, or import one",
        description="export: a consistent copy while the app runs (SQLite online backup + "
        "uploaded files). import: into an empty data folder; FAISS indexes are "
        "rebuilt from SQLite on next start.",
    )
    p.add_argument("action", choices=["export", "import"])
    p.add_argument("archive", type=Path)
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser(
        "migrate",
        help="copy this data folder's store into an empty PostgreSQL, for several app replicas",
        description="Copies documents, pages, chunks and their vectors, summaries, collections, users, "
        "sessions, API tokens, sign-in counts and conversations from the data folder (SQLite + FAISS) "
        "into an empty PostgreSQL with pgvector, keeping every id, in one transaction; then counts "
        "every table on both sides and compares a sample of vectors. With --files-url the originals "
        "and OCR word boxes are copied there too. Stop the app first. The data folder is only read. "
        "docs/capacity.md says when to move; docs/deploy.md how to create the database.",
    )
    p.add_argument("--to", required=True, metavar="postgresql://...", help="the empty target database")
    p.add_argument(
        "--files-url",
        help="a shared folder or gs://bucket/prefix for the originals (DOCCHAT_FILES_URL of the replicas)",
    )
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser(
        "users",
        help="manage the users who may sign in (names, roles, passwords, API tokens)",
        description="Users live in the data folder's SQLite; passwords are hashed with argon2id and "
        "read from a prompt (or the first line of stdin), never from the command line. "
        "Roles: admin (everything), member (own collections), viewer (chat with shared "
        "collections).",
    )
    p.add_argument("action", choices=["add", "list", "passwd", "role", "disable", "enable", "remove", "token"])
    p.add_argument("name", nargs="?", help="user name (1-64 letters, digits, . _ @ -)")
    p.add_argument("--role", choices=["admin", "member", "viewer"], help="for add (default member) and role")
    p.add_argument(
        "--revoke",
        nargs="?",
        const="all",
        metavar="ID",
        help="with token: end the user's API token ID, or all of them (no ID, or 'all'); they stop working at once",
    )
    p.add_argument("--list", action="store_true", help="with token: list the user's API tokens (ids and dates)")
    p.set_defaults(func=cmd_users)

    p = sub.add_parser(
        "cluster",
        help="status / up / down of the deployment on Kubernetes",
        description="down scales the app and OVMS to zero (stop paying for the spot node; "
        "volumes stay), up restores them and waits until ready, status shows "
        "deployments, pods, volumes and OVMS readiness.",
    )
    p.add_argument("action", choices=["status", "up", "down"])
    p.add_argument("--namespace", help="namespace (default: DOCCHAT_NAMESPACE or docchat)")
    p.add_argument("--kubeconfig", type=Path, help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    p.add_argument("--context", help="kubeconfig context")
    p.add_argument("--no-wait", action="store_true", help="up: do not wait for readiness")
    p.add_argument("--timeout", type=float, default=900, help="up: seconds to wait for readiness (default 900)")
    p.set_defaults(func=cmd_cluster)
    return parser


DATA_COMMANDS = frozenset({"serve", "index", "sync", "reembed", "search", "ask", "backup", "users", "migrate"})


def _private_data(settings: Settings) -> None:
    """Whatever this process writes is its user's alone (umask 077: the store, uploads, rendered
    pages, exports, Gradio's cache), and what an older version left readable is fixed now."""
    import os

    from webapp.atomic import make_private

    os.umask(0o077)
    for folder in dict.fromkeys([Path(settings.data_dir), Path(settings.uploads_dir)]):
        try:
            changed = make_private(folder)
        except OSError as exc:
            raise UserError(f"The data folder {folder} could not be made private ({exc.strerror}).") from exc
        if changed:
            logging.getLogger("webapp").warning(
                "%s: group/other access removed from %d file(s) and folder(s)", folder, changed
            )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = _settings_from(args)
    level = settings.log_level.upper() if args.command == "serve" else "WARNING"
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command in DATA_COMMANDS:
            _private_data(settings)
        return args.func(args)
    except UserError as exc:
        logging.getLogger("webapp").debug("command failed", exc_info=True)
        print(f"error: {exc.user_message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
