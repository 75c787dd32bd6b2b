#!/bin/sh
# Prepares this Debian 12 host to build and run camd's image with podman, without any registry:
#   1. $CONTAINERS_CONF (podman's and buildah's containers.conf for this process tree only; ctest
#      points it into the build tree, by hand it defaults to ${TMPDIR:-/tmp}/camd-containers.conf):
#      runc + cgroupfs + file events, generous ulimits (crun fails on some cgroup v1 hosts;
#      cgroupfs needs no systemd). /etc/containers is not touched.
#   2. The base image docker.io/library/debian:bookworm-slim, made locally with
#      `debootstrap --variant=minbase bookworm` from the host's own Debian mirror and
#      `podman import`-ed under the name the Dockerfile uses (skipped when it already exists).
# Needs root and the packages podman, runc, debootstrap. Idempotent. --conf-only: step 1 alone
# (the container tests write their settings before their first podman call).
set -eu

BASE_IMAGE=${CAMD_BASE_IMAGE:-docker.io/library/debian:bookworm-slim}
export CONTAINERS_CONF=${CONTAINERS_CONF:-${TMPDIR:-/tmp}/camd-containers.conf}
CONF=$CONTAINERS_CONF

log() { printf 'setup-host: %s\n' "$*" >&2; }

# ---- 1. containers.conf -------------------------------------------------------------------
mkdir -p "$(dirname "$CONF")"
cat >"$CONF" <<'CONFEOF'
# camd container test settings (written by tests/container/setup-host.sh; used through
# CONTAINERS_CONF by the container tests only)
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONFEOF
log "wrote $CONF (CONTAINERS_CONF)"

[ "${1:-}" = --conf-only ] && exit 0

# ---- 2. base image ------------------------------------------------------------------------
if podman image exists "$BASE_IMAGE"; then
  log "$BASE_IMAGE exists"
  exit 0
fi

# The host's Debian mirror: the first URI of a bookworm suite in the apt sources (deb822 or
# one-line format), excluding the security archive.
mirror=""
for f in /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  m=$(awk 'BEGIN{IGNORECASE=1} /^URIs:/{u=$2} /^Suites:/{ if ($0 ~ /bookworm( |$)/ && u !~ /security/) {print u; exit} }' "$f")
  [ -n "$m" ] && { mirror=$m; break; }
done
if [ -z "$mirror" ]; then
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    m=$(awk '$1=="deb" && $0 ~ / bookworm / && $0 !~ /security/ { for (i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit} }' "$f")
    [ -n "$m" ] && { mirror=$m; break; }
  done
fi
mirror=${mirror:-http://deb.debian.org/debian}
log "building $BASE_IMAGE with debootstrap from $mirror"

dir=$(mktemp -d "${TMPDIR:-/var/tmp}/camd-rootfs.XXXXXX")
trap 'rm -rf "$dir"' EXIT
debootstrap --variant=minbase bookworm "$dir" "$mirror" >"$dir.log" 2>&1 || {
  tail -30 "$dir.log" >&2
  rm -f "$dir.log"
  exit 1
}
rm -f "$dir.log"

# Slim like the official image: no docs/man/locales from later installs, no apt caches.
cat >"$dir/etc/dpkg/dpkg.cfg.d/slim" <<'SLIMEOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
SLIMEOF
cat >"$dir/etc/apt/apt.conf.d/docker-clean" <<'APTEOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APTEOF
echo 'Acquire::Languages "none";' >"$dir/etc/apt/apt.conf.d/docker-no-languages"
# apt inside the image uses the same mirror (bookworm + bookworm-updates; security when the
# host has it), in Debian's deb822 format.
rm -f "$dir/etc/apt/sources.list"
{
  printf 'Types: deb\nURIs: %s\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$mirror"
  sec=$(grep -h -A0 '^URIs:.*security' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2; exit}')
  if [ -n "$sec" ]; then
    printf '\nTypes: deb\nURIs: %s\nSuites: bookworm-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$sec"
  fi
} >"$dir/etc/apt/sources.list.d/debian.sources"
rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/cache/apt/archives/*.deb \
  "$dir"/usr/share/doc/* "$dir"/usr/share/man/* "$dir"/usr/share/locale/* "$dir"/tmp/* 2>/dev/null || true

tar -C "$dir" --numeric-owner -cf - . |
  podman import --change 'CMD ["bash"]' - "$BASE_IMAGE" >/dev/null
log "imported $BASE_IMAGE"
