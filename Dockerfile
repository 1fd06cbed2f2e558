# syntax=docker/dockerfile:1
# DocChat images. Install steps mirror the Makefile's, so `make test` exercises them.
#   docker build -t docchat .                       # lean runtime: serving requirements only, no torch
#   docker build --target quantize -t docchat-quantize .   # model building (torch, optimum-intel, nncf)
# For a CPU-only torch in the quantize image pass
#   --build-arg PIP_EXTRA_INDEX_URL=<PyTorch's CPU wheel index>
# (plain PyPI serves a multi-GB CUDA build on x86_64).

FROM python:3.11-slim-bookworm AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
RUN groupadd --gid 10001 app \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin app
WORKDIR /app

FROM base AS runtime-deps
COPY requirements.txt ./
RUN python -m venv /opt/venv \
    && pip install --no-cache-dir -r requirements.txt

FROM base AS runtime
# Tesseract reads scanned pages (webapp/rag/ocr.py); Debian bookworm's packages, pinned.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tesseract-ocr=5.3.0-2 tesseract-ocr-eng=1:4.1.0-2 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=runtime-deps /opt/venv /opt/venv
COPY webapp/ ./webapp/
# Writable places are only the volumes and /tmp, so the root filesystem can be read-only.
ENV HOME=/tmp \
    GRADIO_TEMP_DIR=/tmp/gradio \
    GRADIO_ANALYTICS_ENABLED=False \
    DOCCHAT_HOST=0.0.0.0 \
    DOCCHAT_PORT=8080 \
    DOCCHAT_MODELS_DIR=/models \
    DOCCHAT_DATA_DIR=/data
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
ENTRYPOINT ["python", "-m", "webapp"]
CMD ["serve"]

FROM base AS quantize-deps
ARG PIP_EXTRA_INDEX_URL=""
COPY requirements.txt requirements-quantize.txt ./
RUN python -m venv /opt/venv \
    && pip install --no-cache-dir torch==2.13.0 \
    && pip install --no-cache-dir -r requirements-quantize.txt \
    && pip install --no-cache-dir --no-deps optimum-intel==2.2.0

FROM base AS quantize
COPY --from=quantize-deps /opt/venv /opt/venv
COPY webapp/ ./webapp/
COPY quantize/ ./quantize/
ENV HOME=/tmp \
    HF_HOME=/tmp/hf \
    DOCCHAT_MODELS_DIR=/models
USER 10001:10001
HEALTHCHECK NONE
ENTRYPOINT ["python", "-m", "quantize"]
CMD ["defaults"]
