#!/usr/bin/env bash
# Process helpers shared by scripts/kafka.sh and scripts/tansu.sh.
#
# Every process a script starts for a broker directory DIR is
#   * started with STRAIT_BROKER_DIR=DIR in its environment, and
#   * recorded in DIR/pids/<name>.pid.
# A pid is only ever signalled after /proc/<pid>/environ proves it still carries that tag, so
# a recycled pid that now belongs to someone else is never killed.
#
# When sourced: defines the functions below.
# When executed: `procs.sh watchdog DIR OWNER_PID OWNER_START_TIME` runs the owner watchdog:
# it polls once a second and, as soon as the owner process is gone (or its pid was reused),
# stops every process recorded in DIR/pids (SIGTERM, then SIGKILL after 10 s). It exits by
# itself once none of those processes is alive any more.

# Start time (clock ticks since boot) of a pid, or empty if it does not exist.
proc_start_time() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
  # Field 22; fields after the ")" that ends the command name start at field 3.
  stat="${stat##*) }"
  # shellcheck disable=SC2086
  set -- $stat
  echo "${20}"
}

# True if pid $1 is alive and was started by our scripts for broker dir $2.
pid_is_ours() {
  local pid="$1" dir="$2"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/environ" ]] || return 1
  { tr '\0' '\n' <"/proc/$pid/environ"; } 2>/dev/null | grep -Fxq "STRAIT_BROKER_DIR=$dir"
}

# Pids (from DIR/pids/*.pid, excluding the watchdog) that are still alive and ours.
# Optional further arguments restrict this to those names (DIR/pids/<name>.pid).
live_pids() {
  local dir="$1" f pid name
  shift
  for f in "$dir"/pids/*.pid; do
    [[ -e "$f" ]] || continue
    name="$(basename "$f" .pid)"
    [[ "$name" == watchdog ]] && continue
    if (($#)) && [[ " $* " != *" $name "* ]]; then continue; fi
    pid="$(cat "$f" 2>/dev/null || true)"
    if pid_is_ours "$pid" "$dir"; then echo "$pid"; fi
  done
}

record_pid() { mkdir -p "$1/pids"; echo "$3" >"$1/pids/$2.pid"; }

# Signal the live processes of DIR with $2 (TERM/KILL); with TERM wait up to $3 seconds and
# escalate to KILL. Further arguments restrict this to those process names; without them
# every process of DIR, the watchdog included, is stopped. Removes the affected pid files.
stop_all() {
  local dir="$1" sig="$2" grace="${3:-30}" pids deadline name
  shift 3 || shift $#
  mapfile -t pids < <(live_pids "$dir" "$@")
  if ((${#pids[@]} > 0)); then
    kill "-$sig" "${pids[@]}" 2>/dev/null || true
    if [[ "$sig" != KILL ]]; then
      deadline=$((SECONDS + grace))
      while [[ -n "$(live_pids "$dir" "$@")" ]] && ((SECONDS < deadline)); do sleep 0.2; done
      mapfile -t pids < <(live_pids "$dir" "$@")
      if ((${#pids[@]} > 0)); then
        echo "procs: ${pids[*]} still running after ${grace}s, sending SIGKILL" >&2
        kill -KILL "${pids[@]}" 2>/dev/null || true
      fi
    fi
    deadline=$((SECONDS + 10))
    while [[ -n "$(live_pids "$dir" "$@")" ]] && ((SECONDS < deadline)); do sleep 0.1; done
  fi
  if (($#)); then
    for name in "$@"; do rm -f "$dir/pids/$name.pid"; done
    return 0
  fi
  stop_watchdog "$dir"
  rm -f "$dir"/pids/*.pid
}

stop_watchdog() {
  local wd
  wd="$(cat "$1/pids/watchdog.pid" 2>/dev/null || true)"
  if [[ -n "$wd" ]] && pid_is_ours "$wd" "$1"; then kill -KILL "$wd" 2>/dev/null || true; fi
  rm -f "$1/pids/watchdog.pid"
}

# (Re)starts the owner watchdog for DIR in its own session (terminal signals do not reach it).
# $2: owner pid, 0 means "no owner" (processes live until stopped explicitly); $3: the owner's
# start time as read by proc_start_time BEFORE anything was launched, so an owner that dies
# while the broker starts is still noticed.
start_watchdog() {
  local dir="$1" owner="$2" owner_start="$3" self
  stop_watchdog "$dir"
  [[ "$owner" != 0 ]] || return 0
  self="${BASH_SOURCE[0]}"
  STRAIT_BROKER_DIR="$dir" setsid bash "$self" watchdog "$dir" "$owner" "$owner_start" \
    </dev/null >>"$dir/watchdog.log" 2>&1 &
  record_pid "$dir" watchdog "$!"
}

# Validates an --owner value and prints its start time (fails if it is not running).
owner_start_time() {
  local owner="$1" start
  [[ "$owner" =~ ^[0-9]+$ ]] || { echo "procs: --owner must be a pid, got '$owner'" >&2; return 1; }
  [[ "$owner" != 0 ]] || { echo 0; return 0; }
  start="$(proc_start_time "$owner")"
  [[ -n "$start" ]] || { echo "procs: owner pid $owner is not running" >&2; return 1; }
  echo "$start"
}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

watchdog_main() {
  local dir="$1" owner="$2" owner_start="$3"
  trap '' INT HUP
  echo "watchdog $$: guarding $dir for owner $owner (start $owner_start)"
  while true; do
    if [[ "$(proc_start_time "$owner")" != "$owner_start" ]]; then
      echo "watchdog: owner $owner is gone, stopping $(live_pids "$dir" | tr '\n' ' ')"
      rm -f "$dir/pids/watchdog.pid"
      stop_all "$dir" TERM 10
      exit 0
    fi
    if [[ -z "$(live_pids "$dir")" ]]; then
      echo "watchdog: nothing left to guard"
      exit 0
    fi
    sleep 1
  done
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  case "${1:-}" in
    watchdog) shift; watchdog_main "$@" ;;
    *) echo "usage: $0 watchdog DIR OWNER_PID OWNER_START_TIME" >&2; exit 2 ;;
  esac
fi
