#!/usr/bin/env bash
# tansu 0.6.0 (a Kafka-compatible broker in Rust) for strait's integration tests.
#
#   tansu.sh install          cargo install tansu 0.6.0 --features dynostore into
#                             $CACHE/tansu-0.6.0 (about 11 minutes on 2 cores; idempotent; waits
#                             for an install of the same root that is already running)
#   tansu.sh bin              print the tansu binary (fails if not installed)
#   tansu.sh start --dir DIR --port P [--storage memory|s3] [--moto-port M] [--name NAME]
#                  [--owner PID] [--timeout S]
#   tansu.sh restart --dir DIR [--owner PID] [--timeout S]
#                             relaunch tansu with the same arguments; memory:// storage starts
#                             empty again, s3:// keeps its data while moto keeps running
#   tansu.sh stop --dir DIR [--all]   SIGTERM (SIGKILL after 10 s) tansu; --all: moto too
#   tansu.sh kill --dir DIR [--all]   SIGKILL tansu; --all: moto too
#
# --storage memory (default): --storage-engine memory://NAME/
# --storage s3: starts moto_server (from the venv of scripts/python-env.sh) on --moto-port,
#   creates bucket NAME with boto3 and runs tansu with --storage-engine s3://NAME/.
# --owner PID: stop everything when PID exits (default: $PPID; 0 = never).
#
# On success `start`/`restart` print the bootstrap address (127.0.0.1:P) on stdout. Exit
# codes: 0 ok, 1 error, 2 usage, 3 a port is already in use (retry with other ports),
# 4 not installed. DIR layout: tansu.log (stdout+stderr, RUST_LOG=${STRAIT_TANSU_LOG:-warn}),
# moto.log, tansu.args, pids/, watchdog.log.
#
# Known tansu 0.6.0 limits (see tests/README.md): consumers must set fetch.wait.max.ms <= 10;
# no transactions, DeleteRecords or ACLs.
set -euo pipefail

TANSU_VERSION=0.6.0
SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${STRAIT_CACHE:-$HOME/.cache/strait}"
TANSU_ROOT="$CACHE/tansu-$TANSU_VERSION"
TANSU_BIN="${STRAIT_TANSU_BIN:-$TANSU_ROOT/bin/tansu}"
INSTALL_LOG="$CACHE/tansu-install.log"
# shellcheck source-path=SCRIPTDIR source=lib/procs.sh
source "$SCRIPTS_DIR/lib/procs.sh"

log() { echo "tansu.sh: $*" >&2; }
die() { log "ERROR: $1"; exit "${2:-1}"; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

installed() { [[ -x "$TANSU_BIN" ]] && "$TANSU_BIN" --version >/dev/null 2>&1; }

# Pids of `cargo install tansu` runs (ours or anybody's) that install into TANSU_ROOT.
running_installs() { pgrep -f "cargo install tansu .*--root $TANSU_ROOT\$" || true; }

cmd_install() {
  if installed; then
    log "tansu already installed: $TANSU_BIN"
    return 0
  fi
  mkdir -p "$CACHE"
  command -v flock >/dev/null 2>&1 || die "flock not found (Debian: apt-get install -y util-linux)"
  exec 9>"$CACHE/tansu-install.lock"
  flock 9
  local pids
  pids="$(running_installs)"
  if [[ -n "$pids" ]]; then
    log "a cargo install into $TANSU_ROOT is already running (pid $(echo "$pids" | tr '\n' ' ')), waiting for it; progress: $INSTALL_LOG"
    while [[ -n "$(running_installs)" ]]; do sleep 5; done
  fi
  if installed; then
    log "tansu installed: $TANSU_BIN"
    return 0
  fi
  command -v cargo >/dev/null 2>&1 || die "cargo not found; install Rust (rustup) first"
  log "building tansu $TANSU_VERSION (about 11 minutes on 2 cores); log: $INSTALL_LOG"
  local start=$SECONDS
  # Run outside the workspace so its rust-toolchain.toml does not apply.
  if ! (cd / && cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore \
    --root "$TANSU_ROOT") >"$INSTALL_LOG" 2>&1; then
    tail -n 40 "$INSTALL_LOG" >&2
    die "cargo install tansu failed; full log: $INSTALL_LOG"
  fi
  installed || die "cargo install finished but $TANSU_BIN does not run"
  log "tansu installed in $((SECONDS - start))s: $TANSU_BIN"
}

require_installed() {
  installed || die "tansu $TANSU_VERSION is not installed at $TANSU_BIN; run scripts/tansu.sh install (scripts/test.sh installs everything)" 4
}

venv_python() {
  local py="${STRAIT_PYTHON:-$CACHE/venv/bin/python}"
  if [[ ! -x "$py" ]] || ! "$py" -c 'import moto, boto3' >/dev/null 2>&1; then
    die "s3 storage needs the test venv with moto; run scripts/python-env.sh (scripts/test.sh installs everything)" 4
  fi
  echo "$py"
}

# Starts moto_server on $2 for DIR, waits for it and creates bucket $3.
start_moto() {
  local dir="$1" port="$2" bucket="$3" py pid deadline
  py="$(venv_python)"
  if pid="$(cat "$dir/pids/moto.pid" 2>/dev/null)" && pid_is_ours "$pid" "$dir"; then
    return 0
  fi
  port_open "$port" && die "moto port $port is already in use" 3
  STRAIT_BROKER_DIR="$dir" "$py" -m moto.server -H 127.0.0.1 -p "$port" \
    </dev/null >>"$dir/moto.log" 2>&1 &
  pid=$!
  record_pid "$dir" moto "$pid"
  deadline=$((SECONDS + 60))
  until port_open "$port"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$dir/moto.log" >&2
      grep -q "Address already in use" "$dir/moto.log" && die "moto port $port is already in use" 3
      die "moto_server exited; log: $dir/moto.log"
    fi
    ((SECONDS < deadline)) || die "moto_server not ready after 60s; log: $dir/moto.log"
    sleep 0.2
  done
  AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1 \
    "$py" -c 'import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1])
s3.create_bucket(Bucket=sys.argv[2])' "http://127.0.0.1:$port" "$bucket" >>"$dir/moto.log" 2>&1 \
    || die "could not create bucket $bucket in moto; log: $dir/moto.log"
}

cmd_start() {
  local dir="" port="" storage=memory moto_port="" name="" owner="$PPID" timeout=60
  while (($#)); do
    case "$1" in
      --dir) dir="$2"; shift 2 ;;
      --port) port="$2"; shift 2 ;;
      --storage) storage="$2"; shift 2 ;;
      --moto-port) moto_port="$2"; shift 2 ;;
      --name) name="$2"; shift 2 ;;
      --owner) owner="$2"; shift 2 ;;
      --timeout) timeout="$2"; shift 2 ;;
      *) log "unknown option: $1"; usage ;;
    esac
  done
  [[ -n "$dir" && "$port" =~ ^[0-9]+$ ]] || { log "start needs --dir and --port"; usage; }
  [[ "$storage" == memory || "$storage" == s3 ]] || die "--storage must be memory or s3" 2
  [[ "$storage" == memory || "$moto_port" =~ ^[0-9]+$ ]] || die "--storage s3 needs --moto-port" 2
  require_installed
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  [[ ! -e "$dir/tansu.args" ]] || die "$dir already holds a broker; use restart, or remove the directory" 2
  [[ -n "$name" ]] || name="tansu-$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  # S3 bucket names: lower case letters, digits and dashes.
  name="$(echo "$name" | tr 'A-Z_.' 'a-z--')"
  mkdir -p "$dir/pids"
  {
    echo "$port"
    echo "$storage"
    echo "${moto_port:-0}"
    echo "$name"
  } >"$dir/tansu.args"
  launch "$dir" "$owner" "$timeout"
}

launch() {
  local dir="$1" owner="$2" timeout="$3" port storage moto_port name owner_start engine pid
  { read -r port; read -r storage; read -r moto_port; read -r name; } <"$dir/tansu.args"
  owner_start="$(owner_start_time "$owner")" || exit 2
  port_open "$port" && die "port $port is already in use" 3
  local env=(STRAIT_BROKER_DIR="$dir" RUST_LOG="${STRAIT_TANSU_LOG:-warn}")
  if [[ "$storage" == s3 ]]; then
    start_moto "$dir" "$moto_port" "$name"
    engine="s3://$name/"
    env+=(AWS_ENDPOINT="http://127.0.0.1:$moto_port" AWS_ALLOW_HTTP=true AWS_ACCESS_KEY_ID=test
      AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1)
  else
    engine="memory://$name/"
  fi
  echo "== $(date -u +%FT%TZ) starting tansu on 127.0.0.1:$port with $engine" >>"$dir/tansu.log"
  env "${env[@]}" "$TANSU_BIN" broker \
    --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine "$engine" --cluster-id "$name" --silent \
    </dev/null >>"$dir/tansu.log" 2>&1 &
  pid=$!
  record_pid "$dir" tansu "$pid"
  start_watchdog "$dir" "$owner" "$owner_start"
  local deadline=$((SECONDS + timeout))
  until port_open "$port"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid" 2>/dev/null || true
      tail -n 20 "$dir/tansu.log" >&2
      if grep -qi "address already in use\|AddrInUse" "$dir/tansu.log"; then
        stop_all "$dir" KILL
        die "tansu port $port is already in use" 3
      fi
      stop_all "$dir" KILL
      die "tansu exited during startup; log: $dir/tansu.log"
    fi
    if ((SECONDS >= deadline)); then
      stop_all "$dir" KILL
      die "tansu not accepting connections after ${timeout}s; log: $dir/tansu.log"
    fi
    sleep 0.1
  done
  echo "127.0.0.1:$port" >"$dir/bootstrap"
  log "tansu ready on 127.0.0.1:$port (pid $pid, $engine, dir $dir)"
  echo "127.0.0.1:$port"
}

cmd_restart() {
  local dir="" owner="$PPID" timeout=60
  while (($#)); do
    case "$1" in
      --dir) dir="$2"; shift 2 ;;
      --owner) owner="$2"; shift 2 ;;
      --timeout) timeout="$2"; shift 2 ;;
      *) log "unknown option: $1"; usage ;;
    esac
  done
  [[ -n "$dir" && -f "$dir/tansu.args" ]] || die "restart needs --dir of a started tansu" 2
  dir="$(cd "$dir" && pwd)"
  require_installed
  stop_all "$dir" TERM 10 tansu
  launch "$dir" "$owner" "$timeout"
}

cmd_stop() { # $1: TERM|KILL, rest: --dir DIR [--all]
  local sig="$1" dir="" all=0
  shift
  while (($#)); do
    case "$1" in
      --dir) dir="$2"; shift 2 ;;
      --all) all=1; shift ;;
      *) log "unknown option: $1"; usage ;;
    esac
  done
  [[ -n "$dir" && -d "$dir" ]] || die "needs --dir of an existing tansu directory" 2
  dir="$(cd "$dir" && pwd)"
  if ((all)); then
    stop_all "$dir" "$sig" 10
  else
    stop_all "$dir" "$sig" 10 tansu
  fi
}

main() {
  local cmd="${1:-}"
  (($#)) && shift
  case "$cmd" in
    install) cmd_install ;;
    bin) require_installed; echo "$TANSU_BIN" ;;
    start) cmd_start "$@" ;;
    restart) cmd_restart "$@" ;;
    stop) cmd_stop TERM "$@" ;;
    kill) cmd_stop KILL "$@" ;;
    -h | --help | help | "") usage ;;
    *) log "unknown command: $cmd"; usage ;;
  esac
}

main "$@"
