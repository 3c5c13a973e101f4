#!/usr/bin/env bash
# Writes .env from .env.example with freshly generated MinIO credentials and the uid/gid the
# containers run as: the caller's, or the images' own user 10001 when the caller is root (the
# stack never runs as root; the bind-mounted volumes are then handed to 10001).
# An existing .env is kept (its secrets may already be in volumes/minio); pass --force to replace it.
set -euo pipefail
cd "$(dirname "$0")/.."
ENV_FILE=${ENV_FILE:-.env}
if [ -e "$ENV_FILE" ] && [ "${1:-}" != "--force" ]; then
  echo "$ENV_FILE exists; keeping it (scripts/make_env.sh --force writes a new one)"
  exit 0
fi
secret() { python3 -c "import secrets; print(secrets.token_urlsafe($1))"; }
uid=$(id -u) gid=$(id -g)
if [ "$uid" = 0 ]; then uid=10001 gid=10001; fi
umask 077
sed -e "s|^MINIO_ROOT_USER=.*|MINIO_ROOT_USER=als-root-$(secret 6)|" \
    -e "s|^MINIO_ROOT_PASSWORD=.*|MINIO_ROOT_PASSWORD=$(secret 32)|" \
    -e "s|^ALS_STORE__ACCESS_KEY=.*|ALS_STORE__ACCESS_KEY=als-pipeline-$(secret 6)|" \
    -e "s|^ALS_STORE__SECRET_KEY=.*|ALS_STORE__SECRET_KEY=$(secret 32)|" \
    -e "s|^ALS_UID=.*|ALS_UID=$uid|" \
    -e "s|^ALS_GID=.*|ALS_GID=$gid|" \
    .env.example > "$ENV_FILE.tmp"
mv "$ENV_FILE.tmp" "$ENV_FILE"
echo "wrote $ENV_FILE (mode 600) with generated MinIO credentials; containers run as $uid:$gid"
