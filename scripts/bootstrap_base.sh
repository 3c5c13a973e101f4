#!/usr/bin/env bash
# A Debian bookworm base image made without a registry (debootstrap + podman import), so the
# Dockerfiles can be built on machines that cannot pull python:3.11-slim-bookworm. The rootfs
# tarball is cached under ~/.cache/als-lm/images and reused; a second run takes seconds.
#   scripts/bootstrap_base.sh [IMAGE]   (default localhost/als-base:bookworm)
set -euo pipefail
IMAGE=${1:-localhost/als-base:bookworm}
CACHE=${ALS_CACHE_DIR:-$HOME/.cache/als-lm}/images
TARBALL=$CACHE/als-base-bookworm.tar
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if podman image exists "$IMAGE"; then
  echo "base image $IMAGE present"
  exit 0
fi
mkdir -p "$CACHE"
if [ ! -s "$TARBALL" ]; then
  rootfs=$(mktemp -d)
  trap 'rm -rf "$rootfs"' EXIT
  echo "==> debootstrap bookworm into $rootfs (about 80 s)"
  debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,ca-certificates \
    bookworm "$rootfs" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
    || { tail -20 "$CACHE/debootstrap.log"; exit 1; }
  # No apt caches or logs in the image: they differ from run to run.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*
  tar --numeric-owner -C "$rootfs" -cf "$TARBALL.partial" .
  mv "$TARBALL.partial" "$TARBALL"
fi
podman import --change 'CMD ["/bin/bash"]' "$TARBALL" "$IMAGE" >/dev/null
echo "base image $IMAGE imported from $TARBALL"
