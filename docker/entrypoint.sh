#!/bin/sh
# Entry point of the kit's image: the arguments are the driver's (npe-repro), so
#   docker compose run --rm repro stare_unet            runs a recipe
#   docker compose run --rm repro smoke --dry-run       prints its plan
#   docker compose run --rm repro                       runs the built-in default (longtail_synth)
#   docker compose run --rm repro tables [ARGS]         rebuilds results/tables (scripts/make_tables.sh)
#   docker compose run --rm repro npe-data list         any of the kit's commands (npe-*), or bash
#
# Who runs it: the container starts as root and drops (setpriv) to the owner uid:gid of the results
# mount, so files land on the host owned by whoever owns that folder; a folder owned by root keeps
# root. NPE_UID (and NPE_GID, default NPE_UID) choose another user. Started as non-root (docker run
# -u), it stays that user. Before any work the three mounts must be writable by that user, and, with
# NPE_REQUIRE_GPU=1 (the GPU service), torch must see a CUDA device that runs an mmcv op
# (/opt/npe/check_gpu.py). Either failing: one line on stderr, exit status 2 (mounts) or 3 (GPU).
set -e
if [ "$#" -eq 0 ]; then
  set -- longtail_synth
fi

DATA="${NPE_DATA_ROOT:-/workspace/segmentation/data}"
RESULTS="${NPE_RESULTS_DIR:-/workspace/results}"
WORK="${NPE_WORK_DIR:-/workspace/work_dirs}"

die() {
  echo "error: $*" >&2
  exit 2
}

# ------------------------------------------------------------------ the user
if [ "$(id -u)" != 0 ]; then
  uid="$(id -u)"
  gid="$(id -g)"
  who="the user the container was started as"
elif [ -n "${NPE_UID:-}" ]; then
  uid="$NPE_UID"
  gid="${NPE_GID:-$NPE_UID}"
  who="chosen by NPE_UID"
  case "$uid:$gid" in
    *[!0-9:]*|:*|*:) die "NPE_UID=$NPE_UID NPE_GID=${NPE_GID:-} must be numbers (e.g. NPE_UID=\$(id -u) NPE_GID=\$(id -g)), or unset to use the owner of the results folder" ;;
  esac
else
  [ -d "$RESULTS" ] || die "$RESULTS does not exist in the container: mount the results folder there"
  uid="$(stat -c %u "$RESULTS")"
  gid="$(stat -c %g "$RESULTS")"
  who="the container runs as the owner of the results folder"
fi

# as_user CMD...: CMD as the chosen user (itself when that is the current one, or root)
as_user() {
  if [ "$(id -u)" != 0 ] || [ "$uid" = 0 ]; then
    "$@"
  else
    setpriv --reuid "$uid" --regid "$gid" --clear-groups -- "$@"
  fi
}

# host folder behind a mount, for the fix (compose passes them; plain `docker run` does not)
host_path() {
  case "$1" in
    "$DATA") echo "${NPE_HOST_DATA_PATH:-<the host folder of $1>}" ;;
    "$RESULTS") echo "${NPE_HOST_RESULTS_PATH:-<the host folder of $1>}" ;;
    *) echo "${NPE_HOST_WORK_DIRS_PATH:-<the host folder of $1>}" ;;
  esac
}

# ------------------------------------------------------------------ the mounts, writable by that user
for dir in "$DATA" "$RESULTS" "$WORK"; do
  if ! as_user test -d "$dir" || ! as_user test -w "$dir" || ! as_user test -x "$dir"; then
    owner="$(stat -c '%u:%g, mode %A' "$dir" 2>/dev/null || echo 'none: missing')"
    host="$(host_path "$dir")"
    if [ "$(stat -c %u "$dir" 2>/dev/null)" = "$uid" ]; then
      fix="chmod u+rwx $host on the host (or mount it read-write)"
    else
      fix="sudo chown -R $uid:$gid $host on the host"
    fi
    die "$dir is not writable by uid $uid (owner $owner; $who): fix with $fix"
  fi
done

# ------------------------------------------------------------------ the GPU, when the service needs one
needs_gpu=1
case "$1" in
  tables|npe-tables|bash|sh) needs_gpu=0 ;;
esac
for arg in "$@"; do
  case "$arg" in
    -h|--help|--list|--dry-run|--version) needs_gpu=0 ;;
  esac
done
if [ "${NPE_REQUIRE_GPU:-0}" = 1 ] && [ "$needs_gpu" = 1 ]; then
  as_user python /opt/npe/check_gpu.py || exit $?
fi

# ------------------------------------------------------------------ the command
case "$1" in
  tables) shift; set -- /opt/npe/scripts/make_tables.sh "$@" ;;
  npe-*|bash|sh|python|python3) ;;
  *) set -- npe-repro "$@" ;;
esac
if [ "$(id -u)" = 0 ] && [ "$uid" != 0 ]; then
  exec setpriv --reuid "$uid" --regid "$gid" --clear-groups -- "$@"
fi
exec "$@"
