"""OpenVINO Model Server files, so OVMS can serve the registry folder as it is.

OVMS serves LLMs as MediaPipe graphs: each model folder holds a ``graph.pbtxt``
whose HttpLLMCalculator loads the IR from ``models_path`` (relative to the
folder), and the registry root holds a ``config.json`` whose
``model_config_list`` names every LLM folder. Start OVMS with
``ovms --rest_port 8000 --config_path /models/config.json`` and each model is
reachable at ``/v3/chat/completions`` under its registry name.

Checked against OVMS's sources (openvinotoolkit/model_server, v2026.3 / main):
- graphs go in ``model_config_list`` as ``{"config": {"name", "base_path"}}``; OVMS
  recognises a graph by the ``graph.pbtxt`` in ``base_path`` (src/modelmanager.cpp), and
  ``mediapipe_config_list`` "is deprecated and should not be used in new configurations"
  (docs/mediapipe.md). A relative ``base_path`` is resolved against config.json's folder.
- ``# OVMS_GRAPH_QUEUE_MAX_SIZE: AUTO`` turns on the graph pool (parsed from the comment by
  mediapipegraphdefinition.cpp; without it: "Graph queue disabled by default"), and the pool
  needs the ``LLM_NODE_EXECUTION_CONTEXTS`` side packet; both are what OVMS's own exporter
  (demos/common/export_models/export_model.py) writes since 2026.3. OVMS 2026.2+ accepts the
  side packet; older servers do not know it (the k8s manifests pin 2026.4).
- Graphs are read from local files only (std::ifstream), never from ``gs://``: replicas read
  a bucket through a Cloud Storage FUSE mount (docs/capacity.md).
"""

from __future__ import annotations

import json
from pathlib import Path

from webapp.atomic import atomic_write_json, atomic_write_text
from webapp.registry import PUBLISHED, RegistryScan, scan

GRAPH_TEMPLATE = """\
# OVMS_GRAPH_QUEUE_MAX_SIZE: AUTO
# Written by `python -m quantize`; OVMS serves this folder as model "{name}".
input_stream: "HTTP_REQUEST_PAYLOAD:input"
output_stream: "HTTP_RESPONSE_PAYLOAD:output"

node: {{
  name: "LLMExecutor"
  calculator: "HttpLLMCalculator"
  input_stream: "LOOPBACK:loopback"
  input_stream: "HTTP_REQUEST_PAYLOAD:input"
  input_side_packet: "LLM_NODE_RESOURCES:llm"
  input_side_packet: "LLM_NODE_EXECUTION_CONTEXTS:llm_ctx"
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


def graph_pbtxt(
    name: str, device: str = "CPU", cache_size_gb: int = 2, max_num_seqs: int = 64, plugin_config: dict | None = None
) -> str:
    return GRAPH_TEMPLATE.format(
        name=name,
        device=device,
        cache_size_gb=cache_size_gb,
        max_num_seqs=max_num_seqs,
        plugin_config=json.dumps(plugin_config or {}),
    )


def write_graph(model_dir: Path, name: str) -> None:
    atomic_write_text(Path(model_dir) / "graph.pbtxt", graph_pbtxt(name), mode=PUBLISHED)


def ovms_config(registry: RegistryScan) -> dict:
    """OVMS multi-model config: every LLM as a MediaPipe graph; base paths relative to the root."""
    return {
        "model_config_list": [
            {"config": {"name": entry.name, "base_path": entry.path.name}}
            for entry in registry.llms()
            if (entry.path / "graph.pbtxt").is_file()
        ],
    }


def served_names(config: dict) -> list[str]:
    """The model names a config.json serves (either form: older registries used mediapipe_config_list)."""
    names = [m["config"]["name"] for m in config.get("model_config_list", []) if "config" in m]
    return names + [m["name"] for m in config.get("mediapipe_config_list", [])]


def write_ovms_config(root: Path) -> dict:
    config = ovms_config(scan(root))
    atomic_write_json(Path(root) / "config.json", config, mode=PUBLISHED)
    return config
