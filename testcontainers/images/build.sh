#!/usr/bin/env bash
# Builds the local images the Docker tests run; no registry is reachable from the test machines.
#
#   cityd-test/coturn:4.6.1               coturn from Debian bookworm's package
#   cityd-test/postgres:17                PostgreSQL 17 from Debian trixie's postgresql-17
#   cityd-test/mattermost-double:<ver>    the Mattermost double (testcontainers/, built with cargo)
#
# Idempotent: an image whose `org.cityd.content` label equals the hash of its recipe is left
# alone. Root filesystems come from debootstrap (minbase) and are cached as tarballs under
# $CITYD_IMAGE_CACHE (default /var/cache/cityd-images), outside the repository, so rebuilding an
# image after `docker rmi` takes seconds. Nothing here is committed or pushed anywhere.
#
# Usage: testcontainers/images/build.sh [coturn|postgres|mattermost-double]...   (default: all)
# Env:   CITYD_IMAGE_CACHE, CITYD_DEBIAN_MIRROR (default: the Debian mirror apt uses),
#        MATTERMOST_DOUBLE_BIN (use this binary instead of building it with cargo).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${CITYD_IMAGE_CACHE:-/var/cache/cityd-images}"
# Bump when the way root filesystems are made changes, so cached tarballs are not reused.
rootfs_recipe=1

say() { printf 'images: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

debian_mirror() {
  if [ -n "${CITYD_DEBIAN_MIRROR:-}" ]; then echo "$CITYD_DEBIAN_MIRROR"; return; fi
  # The mirror apt already reaches (deb822 `URIs:` or one-line `deb` entries), else Debian's CDN.
  local uri
  uri="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null |
    grep -Eo 'https?://[^ ]+/debian/?( |$)' | grep -v security | head -n1 | tr -d ' ' || true)"
  echo "${uri:-http://deb.debian.org/debian}"
}

need() {
  command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || die "$1 is missing: apt-get install $2"
}

# rootfs SUITE PACKAGE... -> prints the path of a cached tarball of a minbase SUITE with PACKAGEs.
rootfs() {
  local suite="$1"; shift
  local packages key tarball work
  packages="$(IFS=,; echo "$*")"
  key="$(printf '%s\n' "$rootfs_recipe" "$suite" "$packages" | sha256sum | cut -c1-16)"
  tarball="$cache/rootfs-$suite-$key.tar"
  if [ -s "$tarball" ]; then echo "$tarball"; return; fi
  need debootstrap debootstrap
  mkdir -p "$cache"
  work="$(mktemp -d "$cache/.work-XXXXXX")"
  say "debootstrap $suite with $packages (cached as $tarball)"
  if ! /usr/sbin/debootstrap --variant=minbase --include="$packages" "$suite" "$work/root" \
    "$(debian_mirror)" >"$work/log" 2>&1; then
    tail -n 30 "$work/log" >&2
    rm -rf "$work"
    die "debootstrap of $suite failed (log above); check that $(debian_mirror) is reachable or set CITYD_DEBIAN_MIRROR"
  fi
  # Package caches and lists are useless in a test image and make up a third of its size.
  rm -rf "$work/root/var/cache/apt/archives/"*.deb "$work/root/var/lib/apt/lists/"* \
    "$work/root/usr/share/doc" "$work/root/usr/share/man" "$work/root/debootstrap"
  tar --numeric-owner -C "$work/root" -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  rm -rf "$work"
  echo "$tarball"
}

# content_hash FILE... -> a hash of the files' names and bytes plus the extra words in $extra.
content_hash() {
  { printf '%s\n' "${extra:-}"; for f in "$@"; do printf '%s\n' "$(basename "$f")"; cat "$f"; done; } |
    sha256sum | cut -c1-32
}

current_label() {
  docker image inspect -f '{{ index .Config.Labels "org.cityd.content" }}' "$1" 2>/dev/null || true
}

# import_base TARBALL -> prints the tag of an image holding exactly that root filesystem.
import_base() {
  local tag
  tag="cityd-test/rootfs:$(basename "$1" .tar | sed 's/^rootfs-//')"
  if ! docker image inspect "$tag" >/dev/null 2>&1; then
    say "docker import $1 as $tag"
    docker import "$1" "$tag" >/dev/null
  fi
  echo "$tag"
}

# build TAG CONTEXT_DIR CONTENT [BASE] -> docker build unless TAG already carries CONTENT.
build() {
  local tag="$1" context="$2" content="$3" base="${4:-scratch}"
  local log
  log="$(mktemp)"
  # The classic builder: BuildKit is not installed here, and it would look for FROM in a registry.
  if ! DOCKER_BUILDKIT=0 docker build -q --build-arg "BASE=$base" \
    --label "org.cityd.content=$content" -t "$tag" "$context" >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    die "docker build of $tag failed (output above)"
  fi
  rm -f "$log"
  say "built $tag"
}

image_coturn() {
  local tag="cityd-test/coturn:4.6.1" content tarball
  extra="bookworm coturn $rootfs_recipe"
  content="$(content_hash "$here/coturn/Dockerfile")"
  if [ "$(current_label "$tag")" = "$content" ]; then say "up to date: $tag"; return; fi
  tarball="$(rootfs bookworm coturn)"
  build "$tag" "$here/coturn" "$content" "$(import_base "$tarball")"
}

image_postgres() {
  local tag="cityd-test/postgres:17" content tarball
  extra="trixie postgresql-17 $rootfs_recipe"
  content="$(content_hash "$here/postgres/Dockerfile" "$here/postgres/entrypoint.sh")"
  if [ "$(current_label "$tag")" = "$content" ]; then say "up to date: $tag"; return; fi
  tarball="$(rootfs trixie postgresql-17)"
  build "$tag" "$here/postgres" "$content" "$(import_base "$tarball")"
}

double_version() {
  sed -n 's/^version *= *"\(.*\)"/\1/p' "$repo/testcontainers/Cargo.toml" | head -n1
}

image_mattermost_double() {
  local version bin tag content context lib
  [ -f "$repo/testcontainers/Cargo.toml" ] || die "testcontainers/Cargo.toml is missing: the Mattermost double is not in this tree"
  version="$(double_version)"
  tag="cityd-test/mattermost-double:$version"
  bin="${MATTERMOST_DOUBLE_BIN:-}"
  if [ -z "$bin" ]; then
    (cd "$repo" && cargo build --quiet -p cityd-testcontainers --bin mattermost-double)
    bin="$(cd "$repo" && cargo metadata --format-version 1 --no-deps |
      sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/debug/mattermost-double"
  fi
  [ -x "$bin" ] || die "no mattermost-double binary at $bin"
  extra="$(sha256sum "$bin" | cut -d' ' -f1)"
  content="$(content_hash "$here/mattermost-double/Dockerfile")"
  if [ "$(current_label "$tag")" = "$content" ]; then say "up to date: $tag"; return; fi
  # A scratch image: the binary, the libraries ldd names, and nothing else.
  context="$(mktemp -d)"
  trap 'rm -rf "$context"' RETURN
  cp "$here/mattermost-double/Dockerfile" "$context/"
  mkdir -p "$context/rootfs/usr/local/bin" "$context/rootfs/tmp"
  cp "$bin" "$context/rootfs/usr/local/bin/mattermost-double"
  # The health check the real image ships (/mattermost/bin/mmctl system status --local): the
  # double answers it when called by that name.
  mkdir -p "$context/rootfs/mattermost/bin"
  ln -s /usr/local/bin/mattermost-double "$context/rootfs/mattermost/bin/mmctl"
  for lib in $(ldd "$bin" | grep -Eo '/[^ ]+'); do
    mkdir -p "$context/rootfs$(dirname "$lib")"
    cp -L "$lib" "$context/rootfs$lib"
  done
  build "$tag" "$context" "$content"
}

need docker docker.io
docker info >/dev/null 2>&1 || die "the Docker engine is not reachable (docker info failed); start it or set DOCKER_HOST"

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(coturn postgres)
  if [ -f "$repo/testcontainers/Cargo.toml" ]; then
    targets+=(mattermost-double)
  else
    say "no testcontainers/ crate in this tree: the mattermost-double image is not built"
  fi
fi
started=$SECONDS
for target in "${targets[@]}"; do
  case "$target" in
    coturn) image_coturn ;;
    postgres) image_postgres ;;
    mattermost-double) image_mattermost_double ;;
    *) die "unknown image $target (known: coturn postgres mattermost-double)" ;;
  esac
done
say "done in $((SECONDS - started))s"
