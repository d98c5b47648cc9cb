#!/usr/bin/env bash
# strait's local demo, in one command:
#
#   scripts/quickstart.sh           set up, start everything, run until Ctrl-C
#   scripts/quickstart.sh --check   the same, unattended: run ~30 s, stop the load, run
#                                   `strait verify`; exit 0 only if the mirror is identical
#                                   and billing's offsets match on the target
#                                   (also: STRAIT_QUICKSTART_CHECK=1)
#
# 1. Installs what is missing: Debian packages only for absent tools (as scripts/test.sh
#    does), Kafka 4.3.1 jars, tansu 0.6.0 (built once, 10-25 minutes on 2 cores, in the
#    background) and the Python venv into ${STRAIT_CACHE:-$HOME/.cache/strait}; builds strait
#    with `cargo build --release`.
# 2. Starts a SOURCE Apache Kafka and a TARGET tansu (memory storage) on loopback.
# 3. Creates topics `orders` (3 partitions) and `payments` (1) on the source and starts a
#    producer (~50 records/s, JSON values, keys, headers) and a consumer group `billing`
#    reading `orders` and committing offsets (scripts/quickstart/demo.py, confluent-kafka).
# 4. Writes strait.toml and runs `target/release/strait run`, which mirrors both topics and
#    translates billing's committed offsets onto the target.
#
# Ctrl-C or SIGTERM stops everything this script started (only that), and nothing else.
# Each run starts from scratch: the previous run's work directory is deleted first.
#
# Environment (defaults in brackets):
#   STRAIT_QUICKSTART_DIR              work directory [<checkout>/.quickstart]
#   STRAIT_QUICKSTART_SOURCE_PORT      source Kafka client port [19092]
#   STRAIT_QUICKSTART_CONTROLLER_PORT  source Kafka controller port [19093]
#   STRAIT_QUICKSTART_TARGET_PORT      target tansu port [19192]
#   STRAIT_QUICKSTART_RATE             records per second from the producer [50]
#   STRAIT_QUICKSTART_CHECK_SECONDS    how long --check lets the load run [30]
#   STRAIT_QUICKSTART_API_PORT         strait's control API [19180]
#   STRAIT_CACHE                       where brokers and the venv are installed
#                                      [$HOME/.cache/strait]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRIPTS="$ROOT/scripts"
CACHE="${STRAIT_CACHE:-$HOME/.cache/strait}"
WORK="${STRAIT_QUICKSTART_DIR:-$ROOT/.quickstart}"
SOURCE_PORT="${STRAIT_QUICKSTART_SOURCE_PORT:-19092}"
CONTROLLER_PORT="${STRAIT_QUICKSTART_CONTROLLER_PORT:-19093}"
TARGET_PORT="${STRAIT_QUICKSTART_TARGET_PORT:-19192}"
API_PORT="${STRAIT_QUICKSTART_API_PORT:-19180}"
RATE="${STRAIT_QUICKSTART_RATE:-50}"
CHECK_SECONDS="${STRAIT_QUICKSTART_CHECK_SECONDS:-30}"
CHECK=0
if [[ "${STRAIT_QUICKSTART_CHECK:-0}" == 1 || "${STRAIT_QUICKSTART_CHECK:-}" == true ]]; then CHECK=1; fi
TOPICS=(orders:3 payments:1)

# pid bookkeeping shared with kafka.sh/tansu.sh: processes started with STRAIT_BROKER_DIR=DIR
# are recorded in DIR/pids and only ever signalled while they still carry that tag.
# shellcheck source-path=SCRIPTDIR source=lib/procs.sh
source "$SCRIPTS/lib/procs.sh"

T0=$SECONDS
TANSU_T0=0
say() { printf '\033[1mquickstart:\033[0m %s\n' "$*"; }
[[ -t 1 ]] || say() { printf 'quickstart: %s\n' "$*"; }
warn() { say "WARNING: $*" >&2; }
die() { say "ERROR: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit "${1:-0}"; }

while (($#)); do
  case "$1" in
    --check) CHECK=1; shift ;;
    -h | --help) usage 0 ;;
    *) echo "quickstart: unknown argument: $1" >&2; usage 2 >&2 ;;
  esac
done
# Absolute, so it means the same after the cd below (rustup reads rust-toolchain.toml from the
# current directory).
WORK="$(realpath -m -- "$WORK")"
cd "$ROOT"

# ---------------------------------------------------------------------------------------------
# Stopping: everything this script starts is either a step/install running in its own process
# group (STEP_PID, TANSU_INSTALL_PID), a broker directory (stopped by kafka.sh/tansu.sh), or an
# app recorded in $APPS/pids (strait, producer, consumer).

STEP_PID=""
TANSU_INSTALL_PID=""
STARTED_SOURCE=0
STARTED_TARGET=0
APPS=""
STOPPING=0

# Stops process group $1 (SIGTERM, SIGKILL after $2 seconds).
stop_group() {
  local pgid="$1" grace="$2" deadline
  kill -TERM -- "-$pgid" 2>/dev/null || return 0
  deadline=$((SECONDS + grace))
  while kill -0 -- "-$pgid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
  kill -KILL -- "-$pgid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  ((STOPPING)) && return 0
  STOPPING=1
  trap 'echo; say "still stopping, please wait"' INT
  trap '' TERM
  if [[ -n "$STEP_PID" ]]; then stop_group "$STEP_PID" 10; fi
  if [[ -n "$TANSU_INSTALL_PID" ]]; then
    say "stopping the tansu build (it starts over on the next run)"
    stop_group "$TANSU_INSTALL_PID" 10
  fi
  if [[ -n "$APPS" && -d "$APPS/pids" && -n "$(live_pids "$APPS")" ]]; then
    say "stopping strait and the sample clients"
    stop_all "$APPS" TERM 20 || true
  fi
  # (setsid: a second Ctrl-C must not kill the stop commands half way)
  if ((STARTED_TARGET)) && [[ -d "$WORK/target/pids" ]]; then
    say "stopping the target tansu"
    setsid bash "$SCRIPTS/tansu.sh" stop --dir "$WORK/target" --all || true
  fi
  if ((STARTED_SOURCE)) && [[ -d "$WORK/source/pids" ]]; then
    say "stopping the source Kafka"
    setsid bash "$SCRIPTS/kafka.sh" stop --dir "$WORK/source" || true
  fi
  if [[ -f "$WORK/quickstart.pid" && "$(cat "$WORK/quickstart.pid" 2>/dev/null)" == "$$" ]]; then
    rm -f "$WORK/quickstart.pid"
  fi
  if ((STARTED_SOURCE)); then
    say "everything stopped; logs stay in $WORK until the next run"
  fi
  exit "$rc"
}

# bash 5.2 crashes (SIGSEGV) when a trap exits the shell while `read -t` waits, so during that
# read the trap only records the signal and the loop exits right after.
IN_READ=0
SIGNALLED=""
on_signal() {
  if ((IN_READ)); then
    SIGNALLED="$1"
    return 0
  fi
  echo
  say "$1: stopping everything this script started"
  if ((CHECK)); then
    [[ "$1" == INT ]] && exit 130
    exit 143
  fi
  exit 0
}

trap cleanup EXIT
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM

# Runs "$@" in its own process group and waits for it: a Ctrl-C or SIGTERM reaches our trap at
# once (bash defers traps while a foreground command runs) and cleanup stops the whole group.
# setsid does not fork here (a background job is never a group leader), so $! is the group.
# --quiet: stdout to /dev/null. (Never redirect the call itself: a function's redirection also
# applies to a trap that runs during its `wait`, which would send the trap's output there.)
step() {
  local rc=0
  if [[ "$1" == --quiet ]]; then
    shift
    setsid "$@" >/dev/null &
  else
    setsid "$@" &
  fi
  STEP_PID=$!
  wait "$STEP_PID" || rc=$?
  STEP_PID=""
  return "$rc"
}

# ---------------------------------------------------------------------------------------------
# Checks that need no installation.

for p in SOURCE_PORT CONTROLLER_PORT TARGET_PORT; do
  if ! [[ "${!p}" =~ ^[0-9]+$ ]] || ((${!p} < 1024 || ${!p} > 32767)); then
    die "STRAIT_QUICKSTART_$p must be a port in 1024-32767, got '${!p}'"
  fi
done
((SOURCE_PORT != CONTROLLER_PORT && SOURCE_PORT != TARGET_PORT && CONTROLLER_PORT != TARGET_PORT)) \
  || die "the three ports must differ (source $SOURCE_PORT, controller $CONTROLLER_PORT, target $TARGET_PORT)"
if ! [[ "$RATE" =~ ^[1-9][0-9]*$ ]]; then
  die "STRAIT_QUICKSTART_RATE must be a positive integer, got '$RATE'"
fi
[[ "$CHECK_SECONDS" =~ ^[0-9]+$ ]] || die "STRAIT_QUICKSTART_CHECK_SECONDS must be a number of seconds"

check_ports() {
  local p var
  for var in SOURCE_PORT CONTROLLER_PORT TARGET_PORT API_PORT; do
    p="${!var}"
    if port_open "$p"; then
      die "port $p is already in use (by another quickstart, a broker or something else);" \
        "choose another one with STRAIT_QUICKSTART_$var=PORT (below 32768)"
    fi
  done
}

# Work directory: refuse one in use by a running quickstart or not made by us; otherwise stop
# whatever a killed earlier run may have left and start from an empty directory.
prepare_work_dir() {
  mkdir -p "$WORK"
  APPS="$WORK/apps"
  local other
  other="$(cat "$WORK/quickstart.pid" 2>/dev/null || true)"
  if [[ "$other" =~ ^[0-9]+$ && "$other" != "$$" ]] \
    && tr '\0' ' ' <"/proc/$other/cmdline" 2>/dev/null | grep -q quickstart.sh; then
    APPS=""
    die "another quickstart (pid $other) is running in $WORK; stop it (Ctrl-C there) or set STRAIT_QUICKSTART_DIR"
  fi
  if [[ ! -e "$WORK/.strait-quickstart" && -n "$(ls -A "$WORK")" ]]; then
    APPS=""
    die "$WORK is not empty and was not made by this script; set STRAIT_QUICKSTART_DIR to another directory"
  fi
  if [[ -e "$WORK/.strait-quickstart" ]]; then
    say "removing the previous run's $WORK"
    if [[ -d "$APPS/pids" ]]; then stop_all "$APPS" KILL; fi
    if [[ -d "$WORK/target/pids" ]]; then bash "$SCRIPTS/tansu.sh" kill --dir "$WORK/target" --all; fi
    if [[ -d "$WORK/source/pids" ]]; then bash "$SCRIPTS/kafka.sh" kill --dir "$WORK/source"; fi
    find "$WORK" -mindepth 1 -delete
  fi
  echo "written by scripts/quickstart.sh; deleted by its next run" >"$WORK/.strait-quickstart"
  echo "$$" >"$WORK/quickstart.pid"
  mkdir -p "$APPS"
}

# ---------------------------------------------------------------------------------------------
# Installation.

java_ok() {
  command -v java >/dev/null 2>&1 || return 1
  local v major
  v="$(java -version 2>&1 | sed -n 's/.* version "\([^"]*\)".*/\1/p' | head -1)"
  major="${v%%.*}"
  [[ "$major" =~ ^[0-9]+$ ]] && ((major >= 17))
}

# Debian packages, only for tools that are really missing (the same list as scripts/test.sh).
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
  ((${#missing[@]} > 0)) || return 0
  say "installing missing system packages: ${missing[*]}"
  command -v apt-get >/dev/null 2>&1 || die "no apt-get; install by hand: ${missing[*]}"
  local sudo=()
  ((EUID == 0)) || sudo=(sudo -n)
  { "${sudo[@]}" apt-get update -q && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" \
    apt-get install -y -q --no-install-recommends "${missing[@]}"; } \
    || die "could not install ${missing[*]}; install them by hand (apt-get install -y ${missing[*]})"
}

# Waits for the background tansu build, printing progress once a minute.
wait_tansu_install() {
  [[ -n "$TANSU_INSTALL_PID" ]] || return 0
  local rc=0 next=$((SECONDS + 60)) crates
  say "waiting for the tansu build (10-25 minutes on 2 cores, once; progress: $CACHE/tansu-install.log)"
  while kill -0 "$TANSU_INSTALL_PID" 2>/dev/null; do
    if ((SECONDS >= next)); then
      crates="$(grep -c '^ *Compiling ' "$CACHE/tansu-install.log" 2>/dev/null || true)"
      say "  still building tansu: ${crates:-0} of about 400 crates compiled, $(((SECONDS - TANSU_T0) / 60)) min so far"
      next=$((SECONDS + 60))
    fi
    sleep 1
  done
  wait "$TANSU_INSTALL_PID" || rc=$?
  TANSU_INSTALL_PID=""
  if ((rc != 0)); then
    cat "$WORK/tansu-install.out" >&2
    die "installing tansu failed (exit $rc); log: $CACHE/tansu-install.log"
  fi
  say "tansu built in $(((SECONDS - TANSU_T0) / 60)) min; cached in $CACHE for next time"
}

install_everything() {
  system_packages
  command -v cargo >/dev/null 2>&1 || die "cargo not found; install Rust with rustup (https://rustup.rs)"
  mkdir -p "$CACHE"
  if bash "$SCRIPTS/tansu.sh" bin >/dev/null 2>&1; then
    say "tansu 0.6.0: installed"
  else
    say "tansu 0.6.0 is not installed: building it in the background with cargo install"
    say "  (10-25 minutes on 2 cores, once; then it is cached in $CACHE)"
    TANSU_T0=$SECONDS
    setsid bash "$SCRIPTS/tansu.sh" install </dev/null >"$WORK/tansu-install.out" 2>&1 &
    TANSU_INSTALL_PID=$!
  fi
  say "Kafka 4.3.1 jars (Maven Central, once)"
  step bash "$SCRIPTS/kafka.sh" install || die "installing Kafka failed"
  say "Python venv with confluent-kafka (pip, once)"
  step --quiet bash "$SCRIPTS/python-env.sh" install || die "creating the Python venv failed"
  PY="$(bash "$SCRIPTS/python-env.sh" path)"
  say "building strait (cargo build --release; a few minutes the first time)"
  step cargo build --release || die "cargo build --release failed"
  STRAIT="${CARGO_TARGET_DIR:-$ROOT/target}/release/strait"
  [[ -x "$STRAIT" ]] || die "cargo built strait but $STRAIT does not exist (CARGO_TARGET_DIR?)"
  wait_tansu_install
}

# ---------------------------------------------------------------------------------------------
# The demo's processes.

# broker_failed NAME EXIT_CODE PORT_VARS...: explains a failed kafka.sh/tansu.sh start.
broker_failed() {
  local name="$1" rc="$2"
  shift 2
  if ((rc == 3)); then
    die "$name: a port is already in use; choose others with $*"
  fi
  die "$name did not start (exit $rc); see the messages above"
}

start_brokers() {
  local rc=0
  say "starting the SOURCE: Apache Kafka on 127.0.0.1:$SOURCE_PORT (a few seconds)"
  STARTED_SOURCE=1
  step --quiet bash "$SCRIPTS/kafka.sh" start --dir "$WORK/source" --port "$SOURCE_PORT" \
    --controller-port "$CONTROLLER_PORT" --owner $$ || rc=$?
  ((rc == 0)) || broker_failed "the source Kafka" "$rc" \
    STRAIT_QUICKSTART_SOURCE_PORT STRAIT_QUICKSTART_CONTROLLER_PORT
  say "starting the TARGET: tansu (memory storage) on 127.0.0.1:$TARGET_PORT"
  STARTED_TARGET=1
  step --quiet bash "$SCRIPTS/tansu.sh" start --dir "$WORK/target" --port "$TARGET_PORT" \
    --name strait-quickstart --owner $$ || rc=$?
  ((rc == 0)) || broker_failed "the target tansu" "$rc" STRAIT_QUICKSTART_TARGET_PORT
}

OWNER_START=""
# launch NAME LOG CMD...: starts CMD in the background, tagged and recorded in $APPS, with a
# watchdog that stops it should this script die without running its trap (SIGKILL).
launch() {
  local name="$1" log="$2"
  shift 2
  local pid deadline=$((SECONDS + 5))
  # NO_COLOR: strait's log goes to a file.
  STRAIT_BROKER_DIR="$APPS" NO_COLOR=1 "$@" </dev/null >>"$log" 2>&1 &
  pid=$!
  record_pid "$APPS" "$name" "$pid"
  [[ -n "$OWNER_START" ]] || OWNER_START="$(owner_start_time $$)"
  # In a subshell, so the watchdog is not our job (bash would report its SIGKILL by
  # stop_watchdog as "Killed").
  (start_watchdog "$APPS" $$ "$OWNER_START")
  # Until the child has exec'd, /proc/PID/environ lacks the tag and app_pid would not see it.
  while ! pid_is_ours "$pid" "$APPS" && kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
    sleep 0.05
  done
}

app_pid() { live_pids "$APPS" "$1"; }

start_load() {
  say "creating topics on the source: orders (3 partitions), payments (1)"
  step "$PY" "$SCRIPTS/quickstart/demo.py" topics --bootstrap "127.0.0.1:$SOURCE_PORT" "${TOPICS[@]}" \
    || die "creating the sample topics failed"
  say "starting the producer (~$RATE records/s) and the consumer group billing"
  launch producer "$WORK/producer.log" "$PY" -u "$SCRIPTS/quickstart/demo.py" produce \
    --bootstrap "127.0.0.1:$SOURCE_PORT" --rate "$RATE" --stats "$WORK/producer.stats"
  launch consumer "$WORK/consumer.log" "$PY" -u "$SCRIPTS/quickstart/demo.py" consume \
    --bootstrap "127.0.0.1:$SOURCE_PORT" --group billing --topic orders --stats "$WORK/consumer.stats"
}

write_config() {
  CONFIG="$WORK/strait.toml"
  [[ "$WORK" != *"'"* ]] || die "the work directory must not contain a single quote: $WORK"
  # The control API's bearer token: a fresh random one, readable only by this user.
  API_TOKEN="$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  (umask 077 && printf 'quickstart:%s\n' "$API_TOKEN" >"$WORK/api.tokens")
  cat >"$CONFIG" <<EOF
# Written by scripts/quickstart.sh. Reference: docs/configuration.md; every key with a comment:
# strait.example.toml.

[source]
bootstrap_servers = "127.0.0.1:$SOURCE_PORT"

[target]
bootstrap_servers = "127.0.0.1:$TARGET_PORT"

[mirror]
topics = ['orders', 'payments']
start = "earliest"

# Committed offsets of these source groups are translated through the offset map and
# committed on the target.
[groups]
include = ['billing']
interval = "1s"

[state]
dir = '$WORK/state'

# The control API (status, metrics, cutovers). The token file holds NAME:TOKEN lines.
[api]
listen = "127.0.0.1:$API_PORT"
token_file = '$WORK/api.tokens'

[log]
level = "info"
EOF
}

start_strait() {
  echo "== $(date -u +%FT%TZ) quickstart: strait run --config $CONFIG" >>"$WORK/strait.log"
  launch strait "$WORK/strait.log" "$STRAIT" run --config "$CONFIG"
}

# Stops strait (SIGTERM: it drains and saves its state, then exits); prints its exit status.
stop_strait() {
  local pid rc=0
  pid="$(app_pid strait)"
  [[ -n "$pid" ]] || return 0
  stop_all "$APPS" TERM 30 strait
  wait "$pid" 2>/dev/null || rc=$?
  return "$rc"
}

run_verify() {
  local rc=0
  say "strait verify --config $CONFIG"
  NO_COLOR=1 "$STRAIT" verify --config "$CONFIG" 2>>"$WORK/verify.log" || rc=$?
  if ((rc == 0)); then say "verify: the target is identical to the source"; else say "verify FAILED (exit $rc); log: $WORK/verify.log"; fi
  return "$rc"
}

status_line() {
  local strait="stopped"
  [[ -n "$(app_pid strait)" ]] && strait="running (pid $(app_pid strait))"
  say "$(date +%T) produced: $(cat "$WORK/producer.stats" 2>/dev/null || echo -)" \
    "| billing: $(cat "$WORK/consumer.stats" 2>/dev/null || echo -) | strait: $strait"
}

guide() {
  local peek="$PY $SCRIPTS/quickstart/demo.py peek --bootstrap 127.0.0.1:$TARGET_PORT --topic orders"
  local offsets="$PY $SCRIPTS/quickstart/demo.py offsets --group billing --topic orders --bootstrap"
  cat <<EOF

  strait quickstart is running ($((SECONDS - T0)) s to get here). Work directory: $WORK

  source   Apache Kafka 4.3.1, 127.0.0.1:$SOURCE_PORT    log: $WORK/source/logs/server.log
  target   tansu 0.6.0 (memory storage), 127.0.0.1:$TARGET_PORT    log: $WORK/target/tansu.log
  load     producer, ~$RATE records/s into orders + payments     log: $WORK/producer.log
           consumer group billing reading orders, committing  log: $WORK/consumer.log
  strait   $STRAIT run --config $CONFIG
           pid $(app_pid strait)    log: $WORK/strait.log    state: $WORK/state

  Verify the mirror: press Enter here. strait pauses, \`strait verify\` compares every mirrored
  record on both clusters through the offset map, and strait resumes. (verify opens strait's
  state directory, which \`strait run\` locks; to run it yourself, stop strait first with
  kill \$(cat $APPS/pids/strait.pid) and then:)
      $STRAIT verify --config $CONFIG
  Peek at the target (tansu consumers need fetch.wait.max.ms <= 10; demo.py sets it):
      $peek
  Group offsets: strait translates billing's committed offsets to the target. Compare:
      $offsets 127.0.0.1:$SOURCE_PORT
      $offsets 127.0.0.1:$TARGET_PORT
  Describe a cluster:
      $STRAIT describe --bootstrap 127.0.0.1:$TARGET_PORT

  Status and metrics (the token is in $WORK/api.tokens):
      export STRAIT_API_URL=http://127.0.0.1:$API_PORT STRAIT_API_TOKEN=\$(cut -d: -f2- $WORK/api.tokens)
      curl -s -H "Authorization: Bearer \$STRAIT_API_TOKEN" \$STRAIT_API_URL/v1/status
      curl -s http://127.0.0.1:$API_PORT/metrics | grep strait_partition_lag_records
  A cutover of orders and the billing group (stop the producer before fencing: manual fence;
  docs/cutover-runbook.md walks through every step):
      $STRAIT cutover create --name wave-1 --topics orders --groups billing --fence manual --failback-fence manual
      $STRAIT cutover advance ID --to promoted --dry-run
      $STRAIT cutover advance ID --to fenced --wait
      $STRAIT cutover status ID
      $STRAIT cutover rollback ID --wait
      $STRAIT cutover report ID --markdown
  Or rehearse the whole cutover and its failback in one go:
      $STRAIT cutover rehearse --topics orders --groups billing --fence manual --failback-fence manual --wait

EOF
}

# ---------------------------------------------------------------------------------------------
# The two ways to run.

interactive() {
  local line next_status=$((SECONDS + 30)) warned_producer=0 warned_consumer=0 strait_down=0 rc
  if [[ -t 0 ]]; then
    say "Enter: verify   q then Enter or Ctrl-C: stop everything"
  else
    say "Ctrl-C or SIGTERM stops everything (stdin is not a terminal: no keys)"
  fi
  while true; do
    line="none"
    if [[ -t 0 ]]; then
      IN_READ=1
      read -r -t 1 line || line="none"
      IN_READ=0
      if [[ -n "$SIGNALLED" ]]; then on_signal "$SIGNALLED"; fi
    else
      sleep 1
    fi
    case "$line" in
      none) ;;
      q | quit | exit) say "stopping"; exit 0 ;;
      *)
        rc=0
        if [[ -n "$(app_pid strait)" ]]; then
          say "pausing strait for verify"
          stop_strait || rc=$?
          ((rc == 0)) || warn "strait exited with status $rc while stopping; log: $WORK/strait.log"
        fi
        run_verify || true
        say "starting strait again"
        start_strait
        strait_down=0
        next_status=$((SECONDS + 30))
        ;;
    esac
    if ((strait_down == 0)) && [[ -z "$(app_pid strait)" ]]; then
      strait_down=1
      rc=0
      wait "$(cat "$APPS/pids/strait.pid" 2>/dev/null || echo 0)" 2>/dev/null || rc=$?
      rm -f "$APPS/pids/strait.pid"
      warn "strait stopped (exit status $rc); last lines of $WORK/strait.log:"
      tail -n 5 "$WORK/strait.log" >&2 || true
      say "brokers and load keep running; press Enter to verify and start strait again"
    fi
    if ((warned_producer == 0)) && [[ -z "$(app_pid producer)" ]]; then
      warned_producer=1
      warn "the producer stopped; log: $WORK/producer.log"
    fi
    if ((warned_consumer == 0)) && [[ -z "$(app_pid consumer)" ]]; then
      warned_consumer=1
      warn "the billing consumer stopped; log: $WORK/consumer.log"
    fi
    if ((SECONDS >= next_status)); then
      status_line
      next_status=$((SECONDS + 30))
    fi
  done
}

check_mode() {
  local end=$((SECONDS + CHECK_SECONDS)) name rc=0
  say "--check: letting the load run for ${CHECK_SECONDS}s"
  while ((SECONDS < end)); do
    for name in strait producer consumer; do
      [[ -n "$(app_pid "$name")" ]] || { tail -n 20 "$WORK/$name.log" >&2; die "$name stopped; log: $WORK/$name.log"; }
    done
    sleep 1
  done
  status_line
  # The API answers: metrics carry the mirrored partitions, status needs the token.
  curl -fsS "http://127.0.0.1:$API_PORT/metrics" | grep -q 'strait_partition_lag_records{topic="orders"' ||
    die "GET /metrics has no lag series for orders"
  curl -fsS -H "Authorization: Bearer $API_TOKEN" "http://127.0.0.1:$API_PORT/v1/status" >"$WORK/status.json" ||
    die "GET /v1/status failed"
  say "API: /metrics and /v1/status answer"
  say "stopping the producer and the consumer (it commits), giving strait 5 s to catch up"
  stop_all "$APPS" TERM 30 producer
  stop_all "$APPS" TERM 30 consumer
  sleep 5
  say "stopping strait (verify needs its state directory)"
  stop_strait || die "strait exited with status $? on SIGTERM; log: $WORK/strait.log"
  run_verify || rc=$?
  NO_COLOR=1 "$STRAIT" verify --config "$CONFIG" --json >"$WORK/verify.json" 2>>"$WORK/verify.log" || true
  "$PY" "$SCRIPTS/quickstart/demo.py" check --source "127.0.0.1:$SOURCE_PORT" \
    --report "$WORK/verify.json" "${TOPICS[@]}" \
    --target "127.0.0.1:$TARGET_PORT" --group billing --group-topic orders || rc=1
  if ((rc == 0)); then
    say "CHECK PASSED in $((SECONDS - T0)) s"
  else
    say "CHECK FAILED; logs in $WORK"
  fi
  return "$rc"
}

main() {
  prepare_work_dir
  check_ports
  install_everything
  check_ports
  start_brokers
  start_load
  write_config
  say "starting strait: $STRAIT run --config $CONFIG"
  start_strait
  sleep 1
  [[ -n "$(app_pid strait)" ]] || { cat "$WORK/strait.log" >&2; die "strait exited at once; log: $WORK/strait.log"; }
  guide
  if ((CHECK)); then
    check_mode
  else
    interactive
  fi
}

main
