"""The serving path must not import torch, transformers or optimum (lean runtime image)."""

import subprocess
import sys

from tests.conftest import ROOT


def test_serving_path_imports_no_training_stack():
    code = (
        "import sys\n"
        "import webapp.server, webapp.__main__, webapp.llm.openvino_local, webapp.llm.catalog\n"
        "from webapp.settings import Settings\n"
        "from webapp.server import create_app\n"
        "create_app(Settings(models_dir='/nonexistent'), preload=False)\n"
        "bad = sorted(m for m in ('torch', 'transformers', 'optimum', 'nncf') if m in sys.modules)\n"
        "print('IMPORTED=' + ','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    imported = out.stdout.strip().splitlines()[-1]
    assert imported == "IMPORTED=", f"serving path imported: {imported}"
