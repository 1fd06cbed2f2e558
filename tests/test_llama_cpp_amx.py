"""llama.cpp without weight repacking where the CPU has AMX (issue 24: `make test` was red on AMX
machines because llama.cpp crashed in its AMX buffers). The crash itself needs an AMX CPU; these
tests check the rule that picks the fix and that a model loads and answers with it applied."""

import subprocess
import sys

import pytest

from benchmarks.llama_cpp_amx import cpu_has_amx
from tests.conftest import ROOT

FLAGS = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f {extra}\n"


def test_amx_is_read_from_the_cpu_flags(tmp_path):
    with_amx, without = tmp_path / "amx", tmp_path / "plain"
    with_amx.write_text(FLAGS.format(extra="amx_bf16 amx_tile amx_int8"))
    without.write_text(FLAGS.format(extra="avx512_vnni"))
    assert cpu_has_amx(with_amx) and not cpu_has_amx(without)
    assert not cpu_has_amx(tmp_path / "missing")


PROBE = """
import sys
import llama_cpp.llama_cpp as lib
from llama_cpp import Llama
from benchmarks.llama_cpp_amx import disable_weight_repacking
applied = disable_weight_repacking()
llm = Llama(model_path=sys.argv[1], n_ctx=512, verbose=False)
out = llm.create_completion("The capital of France is", max_tokens=4, temperature=0)
print(applied, lib.llama_model_default_params().use_extra_bufts, llm.model_params.use_extra_bufts,
      len(out["choices"][0]["text"]) > 0)
"""


@pytest.mark.slow
@pytest.mark.interop
@pytest.mark.parametrize(("choice", "expected"), [("off", "True False False True"), ("on", "False True True True")])
def test_a_model_loads_and_answers_with_the_choice_applied(registry_dir, choice, expected):
    gguf = registry_dir / ".sources" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    # A process of its own: the patch is process-wide, as it is in the server and the benchmark.
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(gguf)],
        cwd=ROOT,
        env={"DOCCHAT_LLAMA_CPP_REPACK": choice, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == expected.split()
