"""python -m webapp: run the DocChat server (and, later, its CLI tools).

    python -m webapp serve                     # http://127.0.0.1:8080
    python -m webapp serve --host 0.0.0.0 --port 8080 --models-dir /models --data-dir /data

Every flag also reads from an environment variable (DOCCHAT_HOST, DOCCHAT_PORT,
DOCCHAT_MODELS_DIR, ...); flags win.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from webapp.settings import Settings


def _settings_from(args) -> Settings:
    overrides = {k: v for k, v in vars(args).items()
                 if k in Settings.model_fields and v is not None}
    return Settings(**overrides)


def cmd_serve(args) -> int:
    import uvicorn

    from webapp.server import create_app

    settings = _settings_from(args)
    app = create_app(settings)
    print(f"DocChat on http://{settings.host}:{settings.port}/  (models: {settings.models_dir.resolve()})",
          flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level.lower(),
                proxy_headers=True, timeout_graceful_shutdown=5)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m webapp", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
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
    p.set_defaults(func=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = _settings_from(args)
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
