#!/usr/bin/env bash
# Make the local base image debian:bookworm-slim with debootstrap, for machines that
# cannot pull from a registry. The project's Dockerfiles then build unchanged.
#   usage: images/make-base.sh [TAG]     (default: debian:bookworm-slim)
# Needs root, debootstrap and a running Docker engine; takes about a minute.
set -euo pipefail
tag="${1:-debian:bookworm-slim}"
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag is already there"
  exit 0
fi
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
root="$(mktemp -d)"
log="$(mktemp)"
trap 'rm -rf "$root" "$log"' EXIT
if ! debootstrap --variant=minbase bookworm "$root" "$mirror" >"$log" 2>&1; then
  reason="$(grep -m1 '^E:' "$log" || tail -n1 "$log")"
  echo "debootstrap failed: ${reason:-no output} (mirror $mirror; DEBIAN_MIRROR sets another)" >&2
  exit 1
fi
cat > "$root/etc/apt/sources.list" <<LIST
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
LIST
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import - "$tag" >/dev/null
echo "made $tag"
