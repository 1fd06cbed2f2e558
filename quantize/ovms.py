"""OpenVINO Model Server files, so OVMS can serve the registry folder as it is.

OVMS serves LLMs as MediaPipe graphs: each model folder holds a ``graph.pbtxt``
whose HttpLLMCalculator loads the IR from ``models_path`` (relative to the
folder), and the registry root holds a ``config.json`` whose
``mediapipe_config_list`` names every LLM folder. Start OVMS with
``ovms --rest_port 8000 --config_path /models/config.json`` and each model is
reachable at ``/v3/chat/completions`` under its registry name.
"""

from __future__ import annotations

import json
from pathlib import Path

from webapp.atomic import atomic_write_json, atomic_write_text
from webapp.registry import PUBLISHED, RegistryScan, scan

GRAPH_TEMPLATE = """\
# Written by `python -m quantize`; OVMS serves this folder as model "{name}".
input_stream: "HTTP_REQUEST_PAYLOAD:input"
output_stream: "HTTP_RESPONSE_PAYLOAD:output"

node: {{
  name: "LLMExecutor"
  calculator: "HttpLLMCalculator"
  input_stream: "LOOPBACK:loopback"
  input_stream: "HTTP_REQUEST_PAYLOAD:input"
  input_side_packet: "LLM_NODE_RESOURCES:llm"
  output_stream: "LOOPBACK:loopback"
  output_stream: "HTTP_RESPONSE_PAYLOAD:output"
  input_stream_info: {{
    tag_index: 'LOOPBACK:0',
    back_edge: true
  }}
  node_options: {{
    [type.googleapis.com / mediapipe.LLMCalculatorOptions]: {{
      models_path: "./",
      plugin_config: '{plugin_config}',
      enable_prefix_caching: true,
      cache_size: {cache_size_gb},
      max_num_seqs: {max_num_seqs},
      device: "{device}",
    }}
  }}
  input_stream_handler {{
    input_stream_handler: "SyncSetInputStreamHandler",
    options {{
      [mediapipe.SyncSetInputStreamHandlerOptions.ext] {{
        sync_set {{
          tag_index: "LOOPBACK:0"
        }}
      }}
    }}
  }}
}}
"""


def graph_pbtxt(name: str, device: str = "CPU", cache_size_gb: int = 2, max_num_seqs: int = 64,
                plugin_config: dict | None = None) -> str:
    return GRAPH_TEMPLATE.format(
        name=name, device=device, cache_size_gb=cache_size_gb, max_num_seqs=max_num_seqs,
        plugin_config=json.dumps(plugin_config or {}),
    )


def write_graph(model_dir: Path, name: str) -> None:
    atomic_write_text(Path(model_dir) / "graph.pbtxt", graph_pbtxt(name), mode=PUBLISHED)


def ovms_config(registry: RegistryScan) -> dict:
    """OVMS multi-model config: every LLM as a MediaPipe graph; base paths relative to the root."""
    return {
        "model_config_list": [],
        "mediapipe_config_list": [
            {"name": entry.name, "base_path": entry.path.name}
            for entry in registry.llms()
            if (entry.path / "graph.pbtxt").is_file()
        ],
    }


def write_ovms_config(root: Path) -> dict:
    config = ovms_config(scan(root))
    atomic_write_json(Path(root) / "config.json", config, mode=PUBLISHED)
    return config
