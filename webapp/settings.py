"""One typed settings object, read from DOCCHAT_* environment variables and CLI flags.

Built once in the entry point (``python -m webapp``) and passed down; nothing
reads the environment at import time.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class RemoteEndpoint(BaseModel):
    """An OpenAI-compatible server (OVMS under /v3, llama.cpp or vLLM under /v1)."""

    # A mistyped key ("api_keyfile") must be an error, not a silently missing API key.
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="short name shown in the model picker, e.g. 'ovms'")
    base_url: str = Field(description="API root including the version, e.g. http://ovms:8000/v3")
    api_key_file: Path | None = Field(None, description="file holding the API key (preferred: a mounted Secret)")
    api_key_env: str | None = Field(None, description="environment variable holding the API key")
    verify_tls: bool = Field(True, description="verify the server's certificate (https)")
    ca_file: Path | None = Field(None, description="PEM bundle of a private CA to trust")
    connect_timeout_s: float = Field(5.0, gt=0)
    read_timeout_s: float = Field(60.0, gt=0, description="longest silence allowed between two streamed chunks")
    retries: int = Field(2, ge=0, le=10, description="retries before the first token arrives")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DOCCHAT_", extra="ignore")

    # Where things live. In the cluster both are persistent volumes.
    models_dir: Path = Field(Path("models"), description="model registry folder written by `python -m quantize`")
    data_dir: Path = Field(Path("data"), description="documents, index and other state")
    files_url: str | None = Field(
        None,
        description=(
            "where documents' originals and OCR word boxes are kept so every replica sees them: a shared "
            "folder or gs://bucket/prefix (the data folder then caches them); unset: the data folder"
        ),
    )
    job_lease_s: float = Field(
        60.0,
        ge=2,
        le=3600,
        description=(
            "with DOCCHAT_DATABASE_URL: how long a replica holds a document it indexes without renewing "
            "(it renews every third of this); a replica that dies leaves it to another after this long"
        ),
    )
    database_url: str | None = Field(
        None,
        description=(
            "postgresql://... to keep state in a shared PostgreSQL (pgvector) so several app replicas can "
            "serve together (docs/capacity.md); unset: SQLite + FAISS in the data folder"
        ),
    )

    # HTTP
    host: str = Field("127.0.0.1", description="interface to listen on (0.0.0.0 in a container)")
    port: int = Field(8080, ge=1, le=65535)
    root_path: str = Field("", description="URL prefix when served behind a proxy")
    allowed_hosts: str = Field(
        "",
        description=(
            "comma-separated host names the server answers to besides localhost and IP addresses, e.g. "
            "docchat.example.com,docchat.docchat.svc.cluster.local ('*.example.com' for sub-domains, '*' for "
            "any); others get 400 (DNS rebinding). Unset: only loopback names with auth none or on a loopback "
            "address; any name with sign-in on a non-loopback address (credentials belong to the real name)"
        ),
    )

    # Sign-in (docs/users.md)
    auth: Literal["none", "password", "header"] | None = Field(
        None,
        description=(
            "none: everyone who reaches the port is an admin (default only on a loopback address); "
            "password: users of `python -m webapp users` sign in (default otherwise); "
            "header: an identity-aware proxy (oauth2-proxy, Google IAP) names the user in auth_header"
        ),
    )
    insecure_no_auth: bool = Field(
        False, description=("allow auth none on a non-loopback address (anyone who reaches the port is an admin)")
    )
    auth_header: str = Field(
        "X-Forwarded-User",
        description=("header holding the user name in header mode (Google IAP: X-Goog-Authenticated-User-Email)"),
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description=(
            'addresses or networks whose identity header is believed, as JSON, e.g. ["10.0.0.5", "35.191.0.0/16"]'
        ),
    )
    header_new_user_role: Literal["member", "viewer", ""] = Field(
        "viewer",
        description=(
            "role given to a user the proxy names for the first time ('' = refuse users not created by an admin)"
        ),
    )
    iap_audience: str = Field(
        "",
        description=(
            "Google IAP only: believe a request only with a valid signed x-goog-iap-jwt-assertion for this "
            "audience, and take the user from its email claim, e.g. "
            "/projects/PROJECT_NUMBER/global/backendServices/SERVICE_ID (required when auth_header is "
            "X-Goog-Authenticated-User-Email; docs/users.md)"
        ),
    )
    iap_keys_file: Path | None = Field(
        None,
        description=(
            "Google IAP's public keys as a JSON object {key id: PEM}, read from this file instead of "
            "fetched from iap_keys_url (for a cluster without internet egress)"
        ),
    )
    iap_keys_url: str = Field(
        "https://www.gstatic.com/iap/verify/public_key",
        description=(
            "where IAP's public keys ({key id: PEM}) are fetched; cached, fetched again for an unknown key "
            "id at most once a minute"
        ),
    )
    session_hours: float = Field(168.0, gt=0, le=24 * 90, description="how long a browser stays signed in")
    signin_max_failures: int = Field(
        5,
        ge=1,
        description=(
            "failed sign-ins per user name before each further attempt waits 2, 4, 8 ... s (four times as "
            "many per client address); the count starts over after an hour without failures"
        ),
    )
    signin_max_delay_s: float = Field(
        30.0,
        gt=0,
        le=900,
        description=(
            "longest wait between sign-in attempts of a user at an address they signed in from before "
            "(elsewhere the wait grows up to 15 minutes; see docs/users.md)"
        ),
    )

    # Chat defaults
    default_model: str = Field("smollm2-135m-instruct-int4", description="registry name of the model to preload")
    system_prompt: str = Field(
        "You are a helpful, concise assistant. Answer in plain language.",
        description="system message put in front of every conversation",
    )
    max_new_tokens: int = Field(512, ge=1, le=8192, description="default answer length cap")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="0 = greedy (deterministic)")
    max_message_chars: int = Field(32_000, ge=1, description="longest message accepted from a user")
    max_history_chars: int = Field(
        200_000,
        ge=1_000,
        description=(
            "longest conversation (all earlier turns together) accepted with a message; the browser sends "
            "the whole history with every message, so this bounds the work one request can cause"
        ),
    )
    max_new_tokens_limit: int = Field(
        2048,
        ge=16,
        le=8192,
        description=("largest answer length a client may ask for (the slider and the API are clamped to it)"),
    )

    # Admission control: answers are generated together by the engine, the rest wait in a short
    # queue; beyond it a user is told at once that the server is busy instead of hanging.
    max_concurrent_answers: int = Field(
        0, ge=0, le=256, description=("answers generated at once (0 = the engine's max_num_seqs)")
    )
    max_waiting_answers: int = Field(
        -1,
        ge=-1,
        le=1024,
        description=(
            "answers allowed to wait for a free slot (-1 = twice max_concurrent_answers); "
            "beyond it the user is told the server is busy"
        ),
    )
    max_sessions: int = Field(
        500,
        ge=10,
        description=(
            "browser/API sessions whose UI state is kept in memory (the least recently used go first); "
            "Gradio's default of 10,000 costs ~1.5 GB"
        ),
    )
    max_wait_s: float = Field(120.0, gt=0, description="longest a queued answer waits before being refused")

    # OpenVINO engine
    device: str = Field("CPU", description="OpenVINO device for generation")
    kv_cache_gb: float = Field(1.0, gt=0, description="KV-cache size per loaded model, in GB")
    max_num_seqs: int = Field(8, ge=1, description="requests decoded together by the batching scheduler")
    max_num_batched_tokens: int = Field(2048, ge=64, description="tokens processed per scheduler step")
    num_threads: int = Field(0, ge=0, description="inference threads (0 = OpenVINO decides)")
    engine_nice: int = Field(
        5,
        ge=0,
        le=19,
        description=(
            "niceness of the engine process: when the cores are saturated, HTTP requests and health "
            "probes get a core first (they need milliseconds; generation barely slows)"
        ),
    )
    prompt_lookup: bool = Field(
        True,
        description=(
            "prompt-lookup decoding for local models: draft the next tokens by copying from the prompt "
            "(grounded answers quote their sources) and verify them in one pass. It pays while one or two "
            "answers run at once and costs throughput beyond that, so the k8s manifests turn it off "
            "(docs/capacity.md)"
        ),
    )
    max_loaded_models: int = Field(2, ge=1, description="models kept in memory at once (least recently used goes)")
    ov_properties: dict[str, str] = Field(
        default_factory=dict,
        description=(
            'extra OpenVINO CPU properties as JSON, e.g. {"KV_CACHE_PRECISION": "u8", '
            '"DYNAMIC_QUANTIZATION_GROUP_SIZE": "32"} (docs/benchmarks.md lists what each changed)'
        ),
    )

    # Remote servers, as JSON: [{"name": "ovms", "base_url": "http://ovms:8000/v3", "api_key_file": "/secrets/key"}]
    remote_endpoints: list[RemoteEndpoint] = Field(default_factory=list)
    # In a cluster: offer every Service labelled docchat.io/ovms=true in this namespace.
    discover_ovms: bool = Field(False, description="discover OVMS Services in the namespace (in-cluster)")
    namespace: str = Field("docchat", description="Kubernetes namespace for discovery and `cluster` commands")
    ovms_api_key_file: Path | None = Field(None, description="API key file for discovered OVMS endpoints")
    catalog_refresh_s: float = Field(
        60.0,
        ge=0,
        description=(
            "ask the model registry, the remote servers and discovery again every N seconds, so a model "
            "published while the app runs is offered (and loaded, if it is the default) without a restart; "
            "0: only at start and on Refresh"
        ),
    )

    # Documents
    embedding_model: str = Field(
        "all-minilm-l6-v2-static",
        description=(
            "registry name of the embedding model for a new data folder (a folder keeps the model it was "
            "built with; `python -m webapp reembed` switches it)"
        ),
    )
    default_collection: str = Field("default", description="collection used when none is chosen")
    max_upload_mb: float = Field(100.0, gt=0, description="largest PDF accepted, in MB")
    max_upload_files: int = Field(50, ge=1, description="most files accepted in one upload")
    # Synced sources (docs/documents.md, "Sync")
    sync_interval_s: float = Field(
        0.0,
        ge=0,
        description=(
            "the app syncs every collection that has a source (a folder or gs://bucket/prefix) this often, "
            "in seconds; 0: only when an admin presses Sync now or `python -m webapp sync` runs"
        ),
    )
    sync_folders: str = Field(
        "",
        description=(
            "comma-separated folders of the server that admins in the app may name as a source (a folder "
            "inside one of them); empty: only gs:// sources in the app (the CLI's operator may name any folder)"
        ),
    )
    max_pages: int = Field(3000, ge=1, description="most pages indexed from one document")
    pdf_timeout_s: float = Field(120.0, gt=0, description="time limit for reading one PDF")
    pdf_memory_mb: int = Field(1536, ge=128, description="memory limit of each PDF reader process")
    pdf_max_figure_kb: int = Field(
        256,
        ge=0,
        description=(
            "skip the text inside vector figures whose drawing code is larger than this (0 = read all); "
            "huge plots cost pypdf seconds for a few tick labels"
        ),
    )
    pdf_parser_nice: int = Field(
        10,
        ge=0,
        le=19,
        description=(
            "niceness of the PDF reader processes (0 = same priority as the app): indexing yields the "
            "CPU to chats instead of slowing them down"
        ),
    )
    parse_workers: int = Field(
        0,
        ge=0,
        le=32,
        description=(
            "PDF reader processes running at once (0 = one per usable CPU: the affinity mask and the "
            "cgroup quota, not the node's core count); pypdf is pure Python, so parsing is most of the "
            "indexing time and scales with cores"
        ),
    )
    ocr_enabled: bool = Field(
        True,
        description=("read pages without a text layer (scans) with Tesseract; born-digital pages never go through OCR"),
    )
    ocr_language: str = Field(
        "eng",
        pattern=r"^[A-Za-z_]{3,8}(\+[A-Za-z_]{3,8})*$",
        description=("Tesseract language(s), e.g. eng or deu+eng (each needs its tesseract-ocr-<lang> package)"),
    )
    ocr_dpi: int = Field(300, ge=100, le=600, description="resolution scanned pages are drawn at for OCR")
    ocr_page_timeout_s: float = Field(90.0, gt=0, description="time limit for reading one page by OCR")
    ocr_command: str = Field("tesseract", description="the Tesseract program (a name on PATH or a path)")
    ocr_max_pages: int = Field(
        300,
        ge=1,
        description=(
            "most scanned pages read by OCR per document (~3 s of a core each); the rest are left unread and "
            "the document's note says how many were read"
        ),
    )
    ocr_max_seconds: float = Field(
        1800.0, gt=0, description="OCR work allowed per document, in seconds of reading summed over its pages"
    )
    chunk_size: int = Field(1000, ge=100, description="characters per chunk")
    chunk_overlap: int = Field(150, ge=0, description="characters shared by neighbouring chunks")
    retrieval_k: int = Field(4, ge=1, le=20, description="passages given to the model per question")
    evidence_sentences: int = Field(
        3, ge=1, le=10, description=("sentences of the sources shown as evidence under each grounded answer")
    )
    answer_mode: Literal["auto", "quote", "brief", "free"] = Field(
        "auto",
        description=(
            "how grounded answers are written: 'quote' (the sources' own sentences, no model), 'brief' (the "
            "quotes, then a short answer from the model keeping only sentences the sources support), 'free' "
            "(the quotes, then the model's own text with unsupported sentences marked: for a strong remote "
            "model), or 'auto' (quote for small local models, brief for others); each request may choose "
            "another (docs/evidence.md)"
        ),
    )
    quoted_evidence: int = Field(
        3, ge=1, le=10, description="evidence windows quoted at the start of a grounded answer"
    )
    brief_sentences: int = Field(
        2, ge=1, le=10, description="most sentences the model may add in 'brief' mode (more are not generated)"
    )
    summary_sentences: int = Field(
        12, ge=3, le=30, description="sentences in a document's summary (its most central ones, each with its page)"
    )
    page_cache_mb: float = Field(
        200.0,
        gt=0,
        description=("disk for rendered, highlighted PDF pages under <data_dir>/pages (oldest removed first)"),
    )
    page_render_workers: int = Field(
        0,
        ge=0,
        le=32,
        description=(
            "page images drawn at once (0 = one per usable CPU); each is a child process of up to "
            "pdf_memory_mb, and a page is drawn at most 16 megapixels large"
        ),
    )
    page_render_wait_s: float = Field(
        10.0,
        ge=0,
        le=120,
        description="longest a page image waits for a free drawing slot before the request is told the server is busy",
    )
    min_similarity: float | None = Field(
        None,
        ge=-1,
        le=1,
        description=("cosine below which a passage is irrelevant (default: the embedding model's calibrated value)"),
    )

    # Benchmarks load extra model copies and take every core from the chats: an operator's tool.
    bench_providers: list[str] = Field(
        default_factory=lambda: ["benchmarks.baselines:targets"],
        description=(
            'more Compare targets: "module:function" names called with the settings, returning targets '
            "(default: the llama.cpp / PyTorch baselines of this repository, when installed)"
        ),
    )
    enable_bench: bool = Field(
        True, description=("allow benchmarks from the Compare tab (the k8s overlays turn this off on shared pods)")
    )
    # Where Gradio keeps uploads until they are stored; emptied at start and after every upload.
    upload_tmp_dir: Path | None = Field(
        None,
        description=(
            "folder for uploads in transit (default: <data_dir>/.uploads, on the data volume rather than /tmp)"
        ),
    )

    upload_claim_s: float = Field(
        900.0,
        gt=0,
        description=(
            "seconds a file sent to Gradio's upload route (the browser sends chosen files at once) may wait for "
            "the Upload button's event to name it; unclaimed files are then deleted"
        ),
    )

    metrics_port: int = Field(
        0,
        ge=0,
        le=65535,
        description=(
            "also serve /metrics without sign-in on this port (0 = only at /metrics of the app, behind sign-in); "
            "the cluster opens it to the monitoring namespace only"
        ),
    )

    log_level: str = Field("INFO")

    @property
    def auth_mode(self) -> str:
        """The sign-in mode in force: the setting, or none on loopback and password elsewhere."""
        if self.auth:
            return self.auth
        return "none" if is_loopback(self.host) else "password"

    @property
    def answer_slots(self) -> int:
        return self.max_concurrent_answers or self.max_num_seqs

    @property
    def answer_queue(self) -> int:
        return 2 * self.answer_slots if self.max_waiting_answers < 0 else self.max_waiting_answers

    @property
    def uploads_dir(self) -> Path:
        return self.upload_tmp_dir or Path(self.data_dir) / ".uploads"


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
