#!/usr/bin/env bash
# The one command that runs strait's whole test suite, on a fresh machine too:
#
#   scripts/test.sh
#
# 1. installs what is missing (Debian packages only if a tool is absent; Kafka 4.3.1 jars,
#    tansu 0.6.0 and the Python venv into ${STRAIT_CACHE:-$HOME/.cache/strait}; the tansu
#    build, ~11 minutes when not cached, runs in the background while the rest proceeds),
# 2. exports STRAIT_CACHE, STRAIT_SCRIPTS, STRAIT_KAFKA_LIBS, STRAIT_TANSU_BIN, STRAIT_PYTHON
#    for strait-testkit,
# 3. clears broker directories of earlier runs (target/strait-test-brokers),
# 4. runs cargo fmt --check, cargo clippy -D warnings and cargo test --no-fail-fast.
#
# Every phase runs even if an earlier one failed (except that nothing runs without a working
# cargo); the exit status is non-zero if any phase failed. Timings are printed per phase.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export STRAIT_CACHE="${STRAIT_CACHE:-$HOME/.cache/strait}"
export STRAIT_SCRIPTS="$ROOT/scripts"
mkdir -p "$STRAIT_CACHE"

log() { echo "test.sh: $*" >&2; }

PHASES=()
FAILED=()
T0=$SECONDS

# run_phase NAME CMD... : runs CMD, records its duration and result.
run_phase() {
  local name="$1" start=$SECONDS rc=0
  shift
  log "=== $name: $*"
  "$@" </dev/null || rc=$?
  local took=$((SECONDS - start))
  if ((rc == 0)); then
    PHASES+=("$(printf '%-16s ok      %5ss' "$name" "$took")")
  else
    PHASES+=("$(printf '%-16s FAILED  %5ss (exit %s)' "$name" "$took" "$rc")")
    FAILED+=("$name")
  fi
  log "=== $name finished in ${took}s (exit $rc)"
  return 0
}

summary() {
  log "phase summary (total $((SECONDS - T0))s):"
  local p
  for p in "${PHASES[@]}"; do echo "  $p" >&2; done
  if ((${#FAILED[@]} > 0)); then
    log "FAILED phases: ${FAILED[*]}"
    exit 1
  fi
  log "all phases passed"
}

java_ok() {
  command -v java >/dev/null 2>&1 || return 1
  local v major
  v="$(java -version 2>&1 | sed -n 's/.* version "\([^"]*\)".*/\1/p' | head -1)"
  major="${v%%.*}"
  [[ "$major" =~ ^[0-9]+$ ]] && ((major >= 17))
}

# Debian packages, only for tools that are really missing.
system_packages() {
  local missing=()
  java_ok || missing+=(openjdk-17-jdk-headless)
  command -v mvn >/dev/null 2>&1 || missing+=(maven)
  command -v cmake >/dev/null 2>&1 || missing+=(cmake)
  { command -v cc >/dev/null 2>&1 && command -v c++ >/dev/null 2>&1 && command -v make >/dev/null 2>&1; } \
    || missing+=(build-essential)
  command -v python3 >/dev/null 2>&1 || missing+=(python3)
  python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
  { command -v flock >/dev/null 2>&1 && command -v setsid >/dev/null 2>&1; } || missing+=(util-linux)
  command -v pgrep >/dev/null 2>&1 || missing+=(procps)
  if ((${#missing[@]} == 0)); then
    log "system tools present"
    return 0
  fi
  log "missing system packages: ${missing[*]}"
  command -v apt-get >/dev/null 2>&1 || { log "no apt-get; install them by hand"; return 1; }
  local sudo=()
  ((EUID == 0)) || sudo=(sudo -n)
  "${sudo[@]}" apt-get update -q >&2 &&
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
}

check_cargo() {
  if ! cargo --version >/dev/null 2>&1; then
    cargo --version >&2 || true
    log "cargo does not work in $ROOT (is the toolchain from rust-toolchain.toml installed?)"
    return 1
  fi
  cargo --version >&2
  cargo fmt --version >&2 && cargo clippy --version >&2
}

clear_old_brokers() {
  local root="${STRAIT_TEST_BROKERS_DIR:-$ROOT/target/strait-test-brokers}" d pid
  [[ -d "$root" ]] || return 0
  for d in "$root"/*; do
    [[ -d "$d" ]] || continue
    pid="${d##*-}"
    # Keep directories of test processes that are still running.
    if [[ "$pid" =~ ^[0-9]+$ ]] && [[ -d "/proc/$pid" ]]; then continue; fi
    rm -rf "$d"
  done
  log "cleared old broker directories in $root"
}

TANSU_PID=""
start_tansu_install() {
  if bash "$STRAIT_SCRIPTS/tansu.sh" bin >/dev/null 2>&1; then
    log "tansu already installed"
    return 0
  fi
  log "tansu not installed: building it in the background (log: $STRAIT_CACHE/tansu-install.log)"
  bash "$STRAIT_SCRIPTS/tansu.sh" install </dev/null >"$STRAIT_CACHE/tansu-install.outer.log" 2>&1 &
  TANSU_PID=$!
}

wait_tansu_install() {
  if [[ -n "$TANSU_PID" ]]; then
    local rc=0
    wait "$TANSU_PID" || rc=$?
    cat "$STRAIT_CACHE/tansu-install.outer.log" >&2
    ((rc == 0)) || return "$rc"
  fi
  bash "$STRAIT_SCRIPTS/tansu.sh" bin >/dev/null
}

run_phase system-packages system_packages
run_phase cargo-toolchain check_cargo
if [[ " ${FAILED[*]-} " == *" cargo-toolchain "* ]]; then
  summary
fi
start_tansu_install
run_phase kafka-install bash "$STRAIT_SCRIPTS/kafka.sh" install
run_phase python-env bash "$STRAIT_SCRIPTS/python-env.sh" install
run_phase clear-brokers clear_old_brokers

export STRAIT_KAFKA_LIBS="$STRAIT_CACHE/kafka-4.3.1/libs"
export STRAIT_TANSU_BIN="$STRAIT_CACHE/tansu-0.6.0/bin/tansu"
export STRAIT_PYTHON="$STRAIT_CACHE/venv/bin/python"
log "STRAIT_KAFKA_LIBS=$STRAIT_KAFKA_LIBS STRAIT_TANSU_BIN=$STRAIT_TANSU_BIN STRAIT_PYTHON=$STRAIT_PYTHON"

run_phase fmt cargo fmt --all -- --check
run_phase clippy cargo clippy --workspace --all-targets -- -D warnings
# Compile the tests while tansu may still be building, then wait for it before running them.
run_phase build-tests cargo test --workspace --no-run
# deploy/ artefacts: YAML parses, the dashboard's metrics exist, the sample config loads.
run_phase deploy-check bash deploy/check.sh "$ROOT/target/debug/strait"
run_phase tansu-install wait_tansu_install
run_phase test cargo test --workspace --no-fail-fast
summary
