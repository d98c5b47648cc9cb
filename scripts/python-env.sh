#!/usr/bin/env bash
# Creates (idempotently) the Python virtualenv used by the integration tests:
#   ${STRAIT_CACHE:-$HOME/.cache/strait}/venv  with the packages pinned in python-requirements.txt
#
# Usage: scripts/python-env.sh [install|path]
#   install (default)  create/update the venv, print the venv's python on stdout
#   path               print the venv's python (fails if not installed)
set -euo pipefail

SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${STRAIT_CACHE:-$HOME/.cache/strait}"
VENV="$CACHE/venv"
REQS="$SCRIPTS_DIR/python-requirements.txt"
MARKER="$VENV/.strait-installed"

log() { echo "python-env: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

find_base_python() {
  local py
  for py in "${STRAIT_BASE_PYTHON:-}" python3 python3.12 python3.11; do
    [[ -n "$py" ]] || continue
    if command -v "$py" >/dev/null 2>&1 \
      && "$py" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 9) else 1)' >/dev/null 2>&1; then
      command -v "$py"
      return 0
    fi
  done
  return 1
}

requirements_hash() { sha256sum "$REQS" | cut -d' ' -f1; }

is_installed() {
  [[ -x "$VENV/bin/python" && -f "$MARKER" ]] \
    && [[ "$(cat "$MARKER")" == "$(requirements_hash)" ]] \
    && "$VENV/bin/python" -c 'import confluent_kafka, kafka, moto, boto3' >/dev/null 2>&1
}

install() {
  if is_installed; then
    log "venv up to date: $VENV"
  else
    local base
    base="$(find_base_python)" || die "no python3 (>= 3.9, with the venv module) found; on Debian: apt-get install -y python3 python3-venv"
    log "creating venv $VENV with $base"
    mkdir -p "$CACHE"
    if [[ ! -x "$VENV/bin/python" ]]; then
      "$base" -m venv "$VENV" || die "python -m venv failed (on Debian: apt-get install -y python3-venv)"
    fi
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2 \
      || log "warning: could not upgrade pip, continuing"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQS" >&2 \
      || die "pip install -r $REQS failed"
    "$VENV/bin/python" -c 'import confluent_kafka, kafka, moto, boto3' \
      || die "venv packages do not import"
    requirements_hash >"$MARKER"
    log "venv ready: $VENV"
  fi
  echo "$VENV/bin/python"
}

case "${1:-install}" in
  install) install ;;
  path)
    is_installed || die "venv not installed; run scripts/python-env.sh (or scripts/test.sh)"
    echo "$VENV/bin/python"
    ;;
  *) die "usage: $0 [install|path]" ;;
esac
