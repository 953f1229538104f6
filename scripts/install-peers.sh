#!/usr/bin/env bash
# Installs the real programs the tests and the demo run against, from Debian's packages:
# docker-registry (distribution 2.8), the Docker engine, containerd and ctr, skopeo, a
# static busybox for the test image, GnuPG, curl, strace, btrfs-progs. Installs only what is missing; needs root (or sudo) for apt.
set -euo pipefail

need=()
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v ctr >/dev/null 2>&1 || need+=(containerd)
command -v skopeo >/dev/null 2>&1 || need+=(skopeo)
command -v gpg >/dev/null 2>&1 || need+=(gnupg)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# The kill tests of merge, split and join inject faults at one file's system calls.
command -v strace >/dev/null 2>&1 || need+=(strace)
# The reflink tests clone files on a btrfs image of their own.
command -v mkfs.btrfs >/dev/null 2>&1 || need+=(btrfs-progs)
command -v filefrag >/dev/null 2>&1 || need+=(e2fsprogs)
# The test image runs busybox inside a container: it must be the static build.
if [ ! -x /bin/busybox ] || ldd /bin/busybox >/dev/null 2>&1; then
  need+=(busybox-static)
fi

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "install-peers: need root or sudo to install: ${need[*]}" >&2
    exit 1
  fi
  sudo="sudo"
fi
echo "install-peers: installing ${need[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
