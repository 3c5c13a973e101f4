#!/usr/bin/env bash
# `make verify-containers`: build every image with Podman and smoke-test the stack on a machine
# without a Docker engine or a registry (docs/containers.md, ../shared/CONTAINERS.md):
#   1. a Debian bookworm base from debootstrap; substitutes for the upstream MinIO, Ollama and
#      ChromaDB images holding the same binaries the test suite runs (compose.local.yaml uses them);
#   2. the shared stage of the Python images (services/python-base), then the seven images from
#      their Dockerfiles (the trainer on the CPU base);
#   3. a second, uncached build of the processor and scraper images: `pip freeze` must not change;
#   4. MinIO (+ minio-init), ChromaDB, Ollama and the evaluator UI with podman-compose, each healthy;
#   5. `scrape sample` then `process` in their containers; the process run's outputs are read back
#      from MinIO and their sha256 checked; the UI must answer HTTP 200.
# Every container is removed at the end, also on failure; images stay cached.
# Options (environment): VERIFY_TORCH_IMAGES=0 skips building the trainer and exporter images
# (multi-GB); the evaluator is always built because the UI check needs it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=versions.env
source scripts/versions.env

CACHE=${ALS_CACHE_DIR:-$HOME/.cache/als-lm}
WORK=${ALS_VERIFY_DIR:-$CACHE/verify}
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)
REVISION=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
PODMAN_COMPOSE_VERSION=1.6.0
# The Go module proxy serves mc only as a pseudo-version; this is mc's master of 2025-03-13.
MC_MODULE=github.com/minio/mc@v0.0.0-20250313080218-cf909e1063a9
BASE=localhost/als-base:bookworm
PROJECT=als-lm-verify
TORCH_IMAGES=${VERIFY_TORCH_IMAGES:-1}
mkdir -p "$WORK" "$CACHE/bin"
SUMMARY=$WORK/summary.md
: >"$SUMMARY"

START=$SECONDS
step_start=$SECONDS
step() { step_start=$SECONDS; printf '\n==> [%4ds] %s\n' $((SECONDS - START)) "$*"; }
record() { printf '| %s | %s | %ds |\n' "$1" "$2" $((SECONDS - step_start)) | tee -a "$SUMMARY"; }
fail() { echo "FAILED: $*" >&2; exit 1; }

# ---- tools -------------------------------------------------------------------------------------
need=()
for pkg in podman runc debootstrap containernetworking-plugins; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  step "apt-get install ${need[*]}"
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
TOOLS=$CACHE/tools
if [ "$("$TOOLS/bin/podman-compose" --version 2>/dev/null | head -1)" != "podman-compose version $PODMAN_COMPOSE_VERSION" ]; then
  step "podman-compose $PODMAN_COMPOSE_VERSION into $TOOLS"
  python3 -m venv "$TOOLS"
  "$TOOLS/bin/pip" install --quiet "podman-compose==$PODMAN_COMPOSE_VERSION"
fi
# These machines refuse crun's cgroup handling and raising rlimits: runc, and limits below the host's.
export CONTAINERS_CONF=$WORK/containers.conf
cat >"$CONTAINERS_CONF" <<'EOF'
[containers]
default_ulimits = ["nofile=10000:10000", "nproc=4096:4096"]
[engine]
runtime = "runc"
EOF
# --format docker: the OCI image format has no HEALTHCHECK, and podman would drop it.
BUILD=(podman build --format docker --isolation=chroot --network=host
       -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro
       --build-arg "GIT_REVISION=$REVISION" --build-arg "VERSION=$VERSION")

# ---- 1. base and upstream substitutes ----------------------------------------------------------
step "base image $BASE"
scripts/bootstrap_base.sh "$BASE"
record "base image (debootstrap bookworm, cached tarball)" "$(podman image inspect --format '{{.Size}}' "$BASE" | numfmt --to=iec)"

[ -x "$CACHE/bin/minio" ] && [ -x "$CACHE/bin/ollama" ] || scripts/setup.sh
if [ ! -x "$CACHE/bin/mc" ]; then
  step "building mc from $MC_MODULE"
  tmp=$(mktemp -d); GOBIN="$tmp" go install "$MC_MODULE"; mv "$tmp/mc" "$CACHE/bin/mc"
fi
subst=$WORK/substitutes
rm -rf "$subst"; mkdir -p "$subst"/{minio,ollama,chroma}
cp "$CACHE/bin/minio" "$CACHE/bin/mc" "$subst/minio/"
cp "$CACHE/bin/ollama" "$subst/ollama/"
uv export --frozen --no-emit-project --no-hashes --extra evaluator --format requirements-txt --quiet \
  -o "$subst/chroma/constraints.txt"

step "substitute localhost/als-upstream/minio:local"
"${BUILD[@]}" -t localhost/als-upstream/minio:local -f - "$subst/minio" >"$WORK/build-upstream-minio.log" <<EOF
FROM $BASE
COPY minio mc /usr/bin/
ENTRYPOINT ["minio"]
EOF
record "substitute minio (MinIO $MINIO_MODULE + mc)" ok
step "substitute localhost/als-upstream/ollama:0.17.4"
"${BUILD[@]}" -t localhost/als-upstream/ollama:0.17.4 -f - "$subst/ollama" >"$WORK/build-upstream-ollama.log" <<EOF
FROM $BASE
COPY ollama /usr/bin/
ENTRYPOINT ["/usr/bin/ollama"]
CMD ["serve"]
EOF
record "substitute ollama ($OLLAMA_MODULE, CPU)" ok
step "substitute localhost/als-upstream/chroma:1.5.9"
"${BUILD[@]}" -t localhost/als-upstream/chroma:1.5.9 -f - "$subst/chroma" >"$WORK/build-upstream-chroma.log" <<EOF
FROM $BASE
COPY constraints.txt /tmp/
RUN python3 -m venv /opt/chroma && /opt/chroma/bin/pip install --no-cache-dir -c /tmp/constraints.txt chromadb==1.5.9
ENV PATH=/opt/chroma/bin:\$PATH
EOF
record "substitute chromadb (chromadb 1.5.9 from PyPI, versions from uv.lock)" ok

# ---- 2. the project's images (the trainer and exporter last: step 6) -------------------------------------------------------------------
build_image() {  # name base-option [tag] [podman build options]
  local name=$1 base=$2 tag=${3:-$VERSION}
  step "build als-lm/$name:$tag ($base)"
  # Earlier builds of the project's images, untagged by this one, hold gigabytes each: a run ran
  # out of disk committing the exporter before they were pruned.
  podman image prune -f --filter "label=org.opencontainers.image.source=https://github.com/als-lm/als-lm" >/dev/null
  "${BUILD[@]}" "$base" -f "services/$name/Dockerfile" \
    -t "als-lm/$name:$tag" "${@:4}" . >"$WORK/build-$name-$tag.log" 2>&1 \
    || { tail -30 "$WORK/build-$name-$tag.log"; fail "building $name (log: $WORK/build-$name-$tag.log)"; }
  record "build $name:$tag" "$(podman image inspect --format '{{.Size}}' "als-lm/$name:$tag" | numfmt --to=iec)"
}
build_image ollama --build-arg=BASE_IMAGE=localhost/als-upstream/ollama:0.17.4
build_image chromadb --build-arg=BASE_IMAGE=localhost/als-upstream/chroma:1.5.9
# The Python images start FROM the build context python-base: the shared stage, built first (the
# trainer's too, on the CPU base: the CUDA base cannot be pulled here).
build_image python-base "--build-arg=BASE_IMAGE=$BASE"
SHARED_STAGE=--build-context=python-base=container-image://localhost/als-lm/python-base:$VERSION
build_image scraper "$SHARED_STAGE"
build_image processor "$SHARED_STAGE"
build_image evaluator "$SHARED_STAGE"

# ---- 3. reproducible rebuilds ------------------------------------------------------------------
freeze() { podman run --rm --entrypoint pip "$1" freeze --all | grep -v '^als-lm @'; }
for name in processor scraper; do
  build_image "$name" "$SHARED_STAGE" rebuild --no-cache
  step "pip freeze of als-lm/$name: first build vs uncached rebuild"
  diff <(freeze "als-lm/$name:$VERSION") <(freeze "als-lm/$name:rebuild") \
    || fail "two builds of $name from the same lock installed different packages"
  record "pip freeze identical across rebuilds: $name" "$(freeze "als-lm/$name:$VERSION" | wc -l) packages"
  podman rmi "als-lm/$name:rebuild" >/dev/null
done

# ---- 4. the stack ------------------------------------------------------------------------------
ENV_FILE=$WORK/verify.env
ENV_FILE=$ENV_FILE scripts/make_env.sh --force >/dev/null
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
for var in MINIO_PORT MINIO_CONSOLE_PORT OLLAMA_PORT CHROMA_PORT UI_PORT; do
  sed -i "s|^$var=.*|$var=$(free_port)|" "$ENV_FILE"
done
rm -rf "$WORK/volumes"; mkdir -p "$WORK/volumes"/{minio,ollama,chroma,work}
{ echo "ALS_VOLUMES_DIR=$WORK/volumes"; echo "ALS_VERSION=$VERSION"; echo "ALS_GIT_REVISION=$REVISION"; } >>"$ENV_FILE"
set -a; source "$ENV_FILE"; set +a
chown "$ALS_UID:$ALS_GID" "$WORK/volumes"/*   # the containers run as ALS_UID (10001 when root)
compose() {
  "$TOOLS/bin/podman-compose" --env-file "$ENV_FILE" -p "$PROJECT" -f compose.yaml -f compose.local.yaml "$@"
}
cleanup() {
  echo "==> removing the stack's containers"
  compose --profile scrape --profile process down >/dev/null 2>&1 || true
  ids=$(podman ps -aq --filter "label=io.podman.compose.project=$PROJECT")
  [ -z "$ids" ] || podman rm -f $ids >/dev/null
}
trap cleanup EXIT

wait_healthy() {  # service timeout_s: runs the service's compose healthcheck until it passes
  local ctr="${PROJECT}_$1_1" deadline=$((SECONDS + $2))
  until podman healthcheck run "$ctr" >/dev/null 2>&1; do
    [ "$(podman inspect --format '{{.State.Running}}' "$ctr" 2>/dev/null)" = true ] \
      || { podman logs --tail 30 "$ctr" 2>&1 || true; fail "$1 is not running"; }
    [ $SECONDS -lt "$deadline" ] || { podman logs --tail 30 "$ctr" 2>&1; fail "$1 not healthy after $2 s"; }
    sleep 2
  done
}

step "podman-compose up: minio, minio-init, ollama, chromadb"
compose up -d --no-build minio >"$WORK/compose-up.log" 2>&1 || { cat "$WORK/compose-up.log"; fail "compose up minio"; }
wait_healthy minio 60
# podman 4.3 has no healthy/completed conditions (podman-compose says so and ignores them): this
# script does the waiting the conditions describe.
compose up -d --no-build minio-init >>"$WORK/compose-up.log" 2>&1 || { cat "$WORK/compose-up.log"; fail "minio-init"; }
[ "$(podman wait "${PROJECT}_minio-init_1")" = 0 ] \
  || { podman logs "${PROJECT}_minio-init_1"; fail "minio-init exited non-zero"; }
podman logs "${PROJECT}_minio-init_1" 2>&1 | tail -1
compose up -d --no-build ollama chromadb >>"$WORK/compose-up.log" 2>&1 || { cat "$WORK/compose-up.log"; fail "compose up"; }
wait_healthy ollama 90
wait_healthy chromadb 90
record "minio, minio-init, ollama, chromadb healthy" ok

step "podman-compose up: evaluator UI"
# --no-deps: its dependencies are up (above), and podman refuses to start a container that
# `--requires` the exited minio-init.
compose up -d --no-build --no-deps evaluator >>"$WORK/compose-up.log" 2>&1 || { cat "$WORK/compose-up.log"; fail "compose up evaluator"; }
wait_healthy evaluator 300
code=$(curl -s -o "$WORK/ui.html" -w '%{http_code}' "http://127.0.0.1:$UI_PORT/")
[ "$code" = 200 ] || fail "the UI answered HTTP $code on 127.0.0.1:$UI_PORT"
record "evaluator UI healthy, GET / on 127.0.0.1:$UI_PORT" "HTTP $code"

# ---- 5. stages in their containers, artifacts through MinIO ------------------------------------
step "scrape sample (scraper container)"
compose --profile scrape run --rm --no-deps scrape scrape sample 2>&1 | tee "$WORK/scrape.log" | tail -3
[ "${PIPESTATUS[0]}" = 0 ] || fail "scrape sample"
record "scrape sample in its container" ok
step "process (processor container)"
compose --profile process run --rm --no-deps process process 2>&1 | tee "$WORK/process.log" | tail -3
[ "${PIPESTATUS[0]}" = 0 ] || fail "process"
record "process in its container" ok

step "artifacts in MinIO (read back with sha256 verification)"
ALS_STORE__BACKEND=s3 ALS_STORE__ENDPOINT=127.0.0.1:$MINIO_PORT ALS_STORE__CREATE_BUCKET=false \
  .venv/bin/python - <<'EOF' | tee -a "$SUMMARY"
import tempfile
from pathlib import Path

from shared import runs
from shared.settings import CommonSettings
from shared.store import open_store

store = open_store(CommonSettings().store)
manifest = runs.latest(store, "process")
names = {ref.name for ref in manifest.outputs}
missing = {"train.jsonl", "val.jsonl", "corpus.txt", "excluded.jsonl", "stats.md", "stats.json"} - names
assert not missing, f"process run {manifest.run_id} lacks {sorted(missing)}"
assert manifest.inputs and all(ref.key.startswith("scrape-sample/") for ref in manifest.inputs), manifest.inputs
with tempfile.TemporaryDirectory() as tmp:
    for ref in manifest.outputs:
        runs.fetch(store, ref, Path(tmp) / ref.name)  # raises IntegrityError on a sha256 mismatch
print(f"| process run {manifest.run_id} in MinIO | {len(names)} outputs, sha256 verified, "
      f"code_version {manifest.code_version} | - |")
EOF
[ "${PIPESTATUS[0]}" = 0 ] || fail "artifacts in MinIO"

cleanup
trap - EXIT

# ---- 6. the other torch images (multi-GB; last, so the smoke test above answers first) ----------
if [ "$TORCH_IMAGES" = 1 ]; then
  build_image trainer "$SHARED_STAGE"
  build_image exporter "$SHARED_STAGE"
  step "trainer and exporter images start"
  podman run --rm als-lm/trainer:"$VERSION" --version >/dev/null || fail "trainer image does not start"
  podman run --rm --entrypoint python als-lm/exporter:"$VERSION" -c "import llama_cpp, torch, transformers" \
    || fail "exporter image cannot import llama_cpp/torch/transformers"
  podman run --rm --entrypoint python als-lm/trainer:"$VERSION" -c "import torch, deepspeed" \
    || fail "trainer image cannot import torch/deepspeed"
  record "trainer and exporter images import their libraries" ok
fi

printf '\nverify-containers: all checks passed in %d s (summary: %s)\n' $((SECONDS - START)) "$SUMMARY"
