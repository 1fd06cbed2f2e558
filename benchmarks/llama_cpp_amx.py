"""llama.cpp on CPUs with AMX (Sapphire Rapids and later; GKE's C3 nodes): weight repacking off.

llama-cpp-python built from source with GGML_NATIVE on an AMX CPU puts the weights in AMX buffers
and segfaults in ``ggml_backend_amx_mul_mat`` on the first request (a known upstream llama.cpp
bug). Loading with ``use_extra_bufts = false`` (llama.cpp's own ``--no-repack``) avoids it.
llama-cpp-python 0.3.36 does not expose that field, so ``disable_weight_repacking()`` wraps the
function its ``Llama`` reads its default model parameters from. It runs only where it is needed:
on other CPUs repacking is what makes llama.cpp fast, and turning it off there would make the
benchmark baseline unfairly slow.

``DOCCHAT_LLAMA_CPP_REPACK`` = ``auto`` (default: off where the CPU has AMX), ``on`` or ``off``.

``python -m benchmarks.llama_cpp_amx ARGS`` runs llama-cpp-python's OpenAI-compatible server
(``python -m llama_cpp.server ARGS``) with that rule; the interop tests start it this way.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "DOCCHAT_LLAMA_CPP_REPACK"


def cpu_has_amx(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    try:
        text = cpuinfo.read_text()
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return "amx_tile" in flags


def repacking_wanted() -> bool:
    choice = os.environ.get(ENV, "auto").strip().lower()
    if choice not in ("auto", "on", "off"):
        raise SystemExit(f"{ENV} must be auto, on or off, not {choice!r}.")
    return choice == "on" or (choice == "auto" and not cpu_has_amx())


def disable_weight_repacking() -> bool:
    """Make every ``Llama`` loaded from now on keep its weights unrepacked when the rule says so;
    returns whether it did (benchmarks print it beside their llama.cpp figures)."""
    if repacking_wanted():
        return False
    import llama_cpp.llama_cpp as lib

    if getattr(lib.llama_model_default_params, "_docchat_no_repack", False):
        return True
    original = lib.llama_model_default_params

    def params_without_repacking():
        params = original()
        params.use_extra_bufts = False
        return params

    params_without_repacking._docchat_no_repack = True  # type: ignore[attr-defined]
    lib.llama_model_default_params = params_without_repacking
    return True


def main() -> None:
    disable_weight_repacking()
    from llama_cpp.server.__main__ import main as serve

    serve()


if __name__ == "__main__":
    main()
