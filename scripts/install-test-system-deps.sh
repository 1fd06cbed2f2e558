#!/usr/bin/env bash
# What the test suite needs outside pip: Debian's chromium for the browser tests (Playwright's own
# browser download cannot work offline; we drive Debian's chromium), Tesseract for OCR of scanned
# pages, and axe-core (npm) which the browser tests inject to check accessibility.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
AXE_VERSION=4.14.1
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v tesseract >/dev/null 2>&1 || missing+=(tesseract-ocr tesseract-ocr-eng)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "installing Debian packages for the tests: ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# axe-core into .cache/axe (git-ignored), pinned; tests/test_accessibility.py reads it from there.
if [ ! -f "$ROOT/.cache/axe/node_modules/axe-core/axe.min.js" ]; then
  echo "installing axe-core $AXE_VERSION for the accessibility tests" >&2
  mkdir -p "$ROOT/.cache/axe"
  npm install --silent --no-audit --no-fund --prefix "$ROOT/.cache/axe" "axe-core@$AXE_VERSION" >/dev/null
fi
