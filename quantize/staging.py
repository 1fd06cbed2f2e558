"""A scratch folder inside the registry where an export is built before it is published.

Staging on the same filesystem as the registry makes publishing a rename:
readers (the app, OVMS) see either the old model folder or the new one.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from webapp.atomic import fsync_dir

WORK_DIR = ".work"


class StagingArea:
    def __init__(self, models_dir: Path, name: str):
        self.root = Path(models_dir) / WORK_DIR
        self.workdir = self.root / f"{name}-{uuid.uuid4().hex[:8]}"
        self.out = self.workdir / "out"

    def __enter__(self) -> StagingArea:
        self.out.mkdir(parents=True)
        return self

    def commit(self, target: Path) -> None:
        """Move the staged folder to ``target``, replacing an older model of that name."""
        old = None
        if target.exists():
            old = self.workdir / "replaced"
            os.replace(target, old)
        os.replace(self.out, target)
        fsync_dir(target.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)
        try:
            self.root.rmdir()  # only if no other export is running
        except OSError:
            pass
