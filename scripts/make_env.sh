#!/usr/bin/env bash
# Writes .env from .env.example with freshly generated MinIO credentials and the caller's uid/gid.
# An existing .env is kept (its secrets may already be in volumes/minio); pass --force to replace it.
set -euo pipefail
cd "$(dirname "$0")/.."
ENV_FILE=${ENV_FILE:-.env}
if [ -e "$ENV_FILE" ] && [ "${1:-}" != "--force" ]; then
  echo "$ENV_FILE exists; keeping it (scripts/make_env.sh --force writes a new one)"
  exit 0
fi
secret() { python3 -c "import secrets; print(secrets.token_urlsafe($1))"; }
umask 077
sed -e "s|^MINIO_ROOT_USER=.*|MINIO_ROOT_USER=als-root-$(secret 6)|" \
    -e "s|^MINIO_ROOT_PASSWORD=.*|MINIO_ROOT_PASSWORD=$(secret 32)|" \
    -e "s|^ALS_STORE__ACCESS_KEY=.*|ALS_STORE__ACCESS_KEY=als-pipeline-$(secret 6)|" \
    -e "s|^ALS_STORE__SECRET_KEY=.*|ALS_STORE__SECRET_KEY=$(secret 32)|" \
    -e "s|^ALS_UID=.*|ALS_UID=$(id -u)|" \
    -e "s|^ALS_GID=.*|ALS_GID=$(id -g)|" \
    .env.example > "$ENV_FILE.tmp"
mv "$ENV_FILE.tmp" "$ENV_FILE"
echo "wrote $ENV_FILE (mode 600) with generated MinIO credentials"
