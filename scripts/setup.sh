#!/usr/bin/env bash
# Idempotent set-up of a fresh machine: the locked Python environment and the real server
# binaries (MinIO, Ollama) built from their Go modules into a cache outside the repository.
# Everything already present is reused, so a second run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=versions.env
source scripts/versions.env

CACHE=${ALS_CACHE_DIR:-$HOME/.cache/als-lm}
BIN=$CACHE/bin
mkdir -p "$BIN" "$CACHE/logs"
export PATH="$HOME/.local/bin:$PATH"
step() { printf '\n==> %s\n' "$*"; }

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  step "apt-get install ${missing[*]}"
  local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

if ! command -v uv >/dev/null || [ "$(uv --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  step "installing uv $UV_VERSION"
  python3 -m pip install --quiet --user "uv==$UV_VERSION" 2>/dev/null || python3 -m pip install --quiet "uv==$UV_VERSION"
fi

step "Python environment (.venv, uv.lock, all extras)"
# llama.cpp is compiled from source: a portable build so the cached wheel runs on any x86-64 CPU.
CMAKE_ARGS="-DGGML_NATIVE=OFF" uv sync --frozen --all-extras --compile-bytecode --quiet

# Debian's Chromium drives the UI's end-to-end tests (Playwright never downloads a browser here).
apt_install chromium

# A binary is rebuilt when its stamp (module version + flags) differs from what is pinned now.
stale() { [ ! -x "$BIN/$1" ] || [ "$(cat "$BIN/$1.stamp" 2>/dev/null)" != "$2" ]; }

if stale minio "$MINIO_MODULE"; then
  step "building MinIO from $MINIO_MODULE (a few minutes, once)"
  tmp=$(mktemp -d)
  GOBIN="$tmp" go install "$MINIO_MODULE"
  mv "$tmp/minio" "$BIN/minio"
  echo "$MINIO_MODULE" > "$BIN/minio.stamp"
fi

# The cgo build of ggml has no SIMD unless asked: x86-64-v3 (AVX2, FMA, F16C) when the CPU has it.
cflags="-O3"
grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo && cflags="-O3 -march=x86-64-v3"
if stale ollama "$OLLAMA_MODULE $cflags"; then
  step "building Ollama from $OLLAMA_MODULE (CPU, about 10 minutes, once)"
  # shellcheck disable=SC2086
  apt_install $OLLAMA_APT_HEADERS
  inc="$CACHE/include"
  if [ ! -f "$inc/miniaudio/miniaudio.h" ]; then
    tmp=$(mktemp -d)
    python3 -m pip download --quiet --no-deps --no-binary :all: "$MINIAUDIO_SDIST" -d "$tmp"
    tar -xzf "$tmp"/miniaudio-*.tar.gz -C "$tmp"
    mkdir -p "$inc/miniaudio"
    cp "$tmp"/miniaudio-*/miniaudio/miniaudio.h "$inc/miniaudio/"
  fi
  tmp=$(mktemp -d)
  CGO_ENABLED=1 CGO_CPPFLAGS="-I$inc" CGO_CFLAGS="$cflags" CGO_CXXFLAGS="$cflags" GOBIN="$tmp" \
    go install -ldflags="-X=github.com/ollama/ollama/version.Version=${OLLAMA_MODULE##*@v}" "$OLLAMA_MODULE"
  mv "$tmp/ollama" "$BIN/ollama"
  echo "$OLLAMA_MODULE $cflags" > "$BIN/ollama.stamp"
fi

step "ready: minio and ollama $("$BIN/ollama" --version 2>/dev/null | grep -o '[0-9.]*$' || true) in $BIN"
