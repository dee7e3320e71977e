#!/usr/bin/env bash
# Creates or updates the Python venv of the Ansible toolchain at $LAB_CACHE/venv from
# ansible/requirements.txt. Skips pip entirely when the requirements did not change since the
# last successful install. The last line on stdout is the venv's bin directory, so callers do:
#   VENV_BIN=$(scripts/venv.sh | tail -1)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../ansible/lab/lab.env
. "$ROOT/ansible/lab/lab.env"
REQS="$ROOT/ansible/requirements.txt"
VENV="${LAB_VENV:-$LAB_CACHE/venv}"
STAMP="$VENV/.requirements.sha256"
PYTHON="${PYTHON:-python3}"

log() { echo "venv.sh: $*" >&2; }

cleanup() {
  local rc=$?
  [ "$rc" -eq 0 ] || log "FAILED (exit $rc); the next run starts the install again"
}
trap cleanup EXIT

ensure_python_venv_module() {
  "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null && return 0
  log "python3 venv module missing; installing it with apt-get"
  local pyver apt=(apt-get -y -q -o "DPkg::Lock::Timeout=$LAB_APT_LOCK_TIMEOUT")
  pyver=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
  # An image's apt lists may be empty (Docker's are): install would find no package at all.
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" update >&2
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" install "python${pyver}-venv" >&2 ||
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install python3-venv >&2
}

requirements_hash() { { cat "$REQS"; "$PYTHON" --version; } | sha256sum | cut -d' ' -f1; }

create_venv() {
  # A venv whose creation was interrupted (before ensurepip finished) has a python but no pip,
  # and would fail every later install: made again.
  if [ -x "$VENV/bin/python" ] && ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
    log "$VENV has no working pip (an interrupted creation?): creating it again"
    rm -rf "$VENV"
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV"
    mkdir -p "$(dirname "$VENV")"
    "$PYTHON" -m venv "$VENV"
  fi
}

install_requirements() {
  local start=$SECONDS
  log "installing $(grep -c '==' "$REQS") pinned packages from ansible/requirements.txt"
  rm -f "$STAMP"
  "$VENV/bin/python" -m pip install -q --upgrade pip >&2
  "$VENV/bin/python" -m pip install -q -r "$REQS" >&2
  log "installed in $((SECONDS - start))s"
}

main() {
  ensure_python_venv_module
  create_venv
  local want
  want=$(requirements_hash)
  if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
    log "up to date ($VENV)"
  else
    install_requirements
    echo "$want" > "$STAMP"
  fi
  echo "$VENV/bin"
}

main "$@"
