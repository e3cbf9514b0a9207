#!/usr/bin/env bash
# Make the Debian bookworm base image of the CPU image where no image registry is reachable:
# debootstrap a minimal bookworm (as root), add the host's CA certificates (TLS-inspecting proxies),
# and `docker import` it as ${NPE_CPU_BASE_IMAGE:-npe-base:bookworm} into the engine at $DOCKER_HOST.
# The root-filesystem tarball is cached per day in ${XDG_CACHE_HOME:-~/.cache}/npe-kit/docker/.
# Where a registry is reachable, use debian:bookworm-slim instead (the CPU compose file's default).
set -euo pipefail
IMAGE="${NPE_CPU_BASE_IMAGE:-npe-base:bookworm}"
MIRROR="${NPE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CA_BUNDLE="${NPE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/npe-kit/docker"
TARBALL="$CACHE/bookworm-minbase-$(date -u +%Y%m%d).tar"

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "docker_base: $IMAGE is there"
  exit 0
fi
if [[ ! -f "$TARBALL" ]]; then
  command -v debootstrap >/dev/null || { echo "error: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 2; }
  [[ "$(id -u)" == 0 ]] || { echo "error: debootstrap needs root" >&2; exit 2; }
  mkdir -p "$CACHE"
  ROOTFS="$(mktemp -d "$CACHE/rootfs.XXXXXX")"
  trap 'rm -rf "$ROOTFS" "$TARBALL.part"' EXIT
  echo "docker_base: debootstrap bookworm (minbase) from $MIRROR"
  debootstrap --variant=minbase bookworm "$ROOTFS" "$MIRROR" >"$ROOTFS.log" 2>&1 \
    || { tail -20 "$ROOTFS.log" >&2; rm -f "$ROOTFS.log"; echo "error: debootstrap failed" >&2; exit 1; }
  rm -f "$ROOTFS.log"
  if [[ -f "$CA_BUNDLE" ]]; then
    # trusted once ca-certificates is installed in the image (update-ca-certificates reads this folder)
    # (one certificate per file, as update-ca-certificates expects)
    mkdir -p "$ROOTFS/usr/local/share/ca-certificates/npe-host"
    awk -v dir="$ROOTFS/usr/local/share/ca-certificates/npe-host" '
      /-----BEGIN CERTIFICATE-----/ { n++; out = sprintf("%s/host-%03d.crt", dir, n) }
      out { print > out }
      /-----END CERTIFICATE-----/ { close(out); out = "" }' "$CA_BUNDLE"
  fi
  rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
  tar --numeric-owner -C "$ROOTFS" -cf "$TARBALL.part" .
  mv "$TARBALL.part" "$TARBALL"
  rm -rf "$ROOTFS"
  trap - EXIT
  # keep only today's tarball
  find "$CACHE" -maxdepth 1 -name 'bookworm-minbase-*.tar' ! -name "$(basename "$TARBALL")" -delete
fi
docker import --change 'CMD ["/bin/bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  "$TARBALL" "$IMAGE" >/dev/null
echo "docker_base: imported $IMAGE"
