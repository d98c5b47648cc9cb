#!/usr/bin/env bash
# Apache Kafka 4.3.1 for strait's integration tests and benchmarks, run from Maven Central jars
# (no distribution tarball, no Docker): one KRaft node (broker+controller, node.id 1) per
# directory, on loopback ports chosen by the caller.
#
#   kafka.sh install                     jars -> $CACHE/kafka-4.3.1/{libs,mm2-libs} (idempotent)
#   kafka.sh libs | mm2-libs             print the jar directory (fails if not installed)
#   kafka.sh start --dir DIR --port P --controller-port C [options]
#   kafka.sh restart --dir DIR [--owner PID] [--timeout S]   same config, ports and data
#   kafka.sh stop --dir DIR [--timeout S]                     SIGTERM, SIGKILL after S (30) s
#   kafka.sh kill --dir DIR                                   SIGKILL
#
# start options:
#   --owner PID          stop the broker when PID exits (default: $PPID; 0 = never)
#   --user NAME:PASS     SASL user, usable with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512
#                        (repeatable; any --user makes the client listener SASL_*)
#   --tls                TLS on the client listener; certificates are generated with openssl
#                        into DIR/tls unless --tls-pem/--tls-ca are given
#   --tls-pem FILE       PEM with the server's PKCS#8 private key followed by its chain
#   --tls-ca FILE        PEM CA certificate clients should trust (copied to DIR/tls/ca.pem)
#   --authorizer         StandardAuthorizer (needs --user); the internal user "broker" and
#                        every --super-user are super users
#   --super-user NAME    (repeatable)
#   --config KEY=VALUE   extra/overriding server.properties line (repeatable)
#   --heap SIZE          -Xmx (default 512m; -Xms is 256m)
#   --timeout S          readiness timeout in seconds (default 120)
#
# On success `start`/`restart` print the bootstrap address (127.0.0.1:P) on stdout; all
# diagnostics go to stderr. Exit codes: 0 ok, 1 error, 2 usage, 3 a port is already in use
# (retry with other ports), 4 not installed.
#
# DIR layout: server.properties, log4j2.properties, data/ (log.dirs + KRaft metadata),
# logs/server.log (broker log), stdout.log (JVM stdout/stderr), tls/, pids/, watchdog.log.
set -euo pipefail

KAFKA_VERSION=4.3.1
SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${STRAIT_CACHE:-$HOME/.cache/strait}"
KAFKA_HOME="$CACHE/kafka-$KAFKA_VERSION"
LIBS="${STRAIT_KAFKA_LIBS:-$KAFKA_HOME/libs}"
MM2_LIBS="$KAFKA_HOME/mm2-libs"
# shellcheck source-path=SCRIPTDIR source=lib/procs.sh
source "$SCRIPTS_DIR/lib/procs.sh"

log() { echo "kafka.sh: $*" >&2; }
die() { log "ERROR: $1"; exit "${2:-1}"; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

check_java() {
  command -v java >/dev/null 2>&1 || die "java not found; install a JDK >= 17 (Debian: apt-get install -y openjdk-17-jdk-headless)"
  local v major
  v="$(java -version 2>&1 | sed -n 's/.* version "\([^"]*\)".*/\1/p' | head -1)"
  major="${v%%.*}"
  [[ "$major" == 1 ]] && major="$(echo "$v" | cut -d. -f2)"
  [[ "$major" =~ ^[0-9]+$ ]] || die "cannot parse java version from: $(java -version 2>&1 | head -1)"
  ((major >= 17)) || die "Kafka $KAFKA_VERSION needs Java >= 17, found $v ($(command -v java))"
}

installed() { [[ -f "$LIBS/.installed" && -f "$MM2_LIBS/.installed" ]]; }

copy_deps() { # $1: output dir, rest: extra mvn args
  local out="$1" tmp
  shift
  tmp="$out.tmp.$$"
  rm -rf "$tmp"
  # (Debian's Maven prints ANSI resets even with -B; strip them.)
  mvn -q -B -Dstyle.color=never -f "$SCRIPTS_DIR/kafka/pom.xml" "$@" dependency:copy-dependencies \
    -DoutputDirectory="$tmp" -DincludeScope=runtime 2>&1 | sed 's/\x1b\[[0-9;]*m//g' >&2 \
    || { rm -rf "$tmp"; die "mvn dependency:copy-dependencies failed (needs Maven Central)"; }
  rm -rf "$out"
  mv "$tmp" "$out"
  date -u +%FT%TZ >"$out/.installed"
}

cmd_install() {
  check_java
  if installed; then
    log "Kafka $KAFKA_VERSION already installed in $KAFKA_HOME"
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || die "mvn not found (Debian: apt-get install -y maven)"
  mkdir -p "$KAFKA_HOME"
  log "installing Kafka $KAFKA_VERSION jars into $KAFKA_HOME"
  [[ -f "$LIBS/.installed" ]] || copy_deps "$LIBS"
  # MirrorMaker 2 (connect-mirror + connect-runtime): a superset classpath, kept apart so the
  # broker's classpath stays small. Run e.g.
  #   java -cp "$MM2_LIBS/*" org.apache.kafka.connect.mirror.MirrorMaker mm2.properties
  [[ -f "$MM2_LIBS/.installed" ]] || copy_deps "$MM2_LIBS" -Pmm2
  log "installed: $(find "$LIBS" -name '*.jar' | wc -l) broker jars, $(find "$MM2_LIBS" -name '*.jar' | wc -l) MirrorMaker 2 jars"
}

require_installed() {
  [[ -f "$LIBS/.installed" ]] \
    || die "Kafka $KAFKA_VERSION jars are not installed in $LIBS; run scripts/kafka.sh install (scripts/test.sh installs everything)" 4
}

valid_name() { [[ "$1" =~ ^[A-Za-z0-9._-]+$ ]]; }

gen_tls() { # $1: tls dir; self-signed CA + server cert for 127.0.0.1/localhost (EC P-256)
  local t="$1"
  command -v openssl >/dev/null 2>&1 || die "--tls without --tls-pem needs openssl (apt-get install -y openssl)"
  (
    cd "$t"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
      -keyout ca.key -out ca.pem -subj "/CN=strait test CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -keyout server.key -out server.csr -subj "/CN=localhost"
    printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=CA:FALSE" \
      "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile server.ext -out server.crt
    openssl pkcs8 -topk8 -nocrypt -in server.key -out server.p8
    cat server.p8 server.crt >server.pem
  ) >/dev/null 2>&1 || die "openssl failed to generate test certificates in $t"
}

write_log4j() { # $1: dir
  cat >"$1/log4j2.properties" <<EOF
# Written by scripts/kafka.sh: everything goes to logs/server.log, nothing to stdout.
name = strait-kafka
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = $1/logs/server.log
appender.file.filePattern = $1/logs/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 50MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
EOF
}

cmd_start() {
  local dir="" port="" cport="" owner="$PPID" tls=0 tls_pem="" tls_ca="" authorizer=0 heap=512m
  local timeout=120 users=() supers=() configs=()
  while (($#)); do
    case "$1" in
      --dir) dir="$2"; shift 2 ;;
      --port) port="$2"; shift 2 ;;
      --controller-port) cport="$2"; shift 2 ;;
      --owner) owner="$2"; shift 2 ;;
      --user) users+=("$2"); shift 2 ;;
      --tls) tls=1; shift ;;
      --tls-pem) tls=1; tls_pem="$2"; shift 2 ;;
      --tls-ca) tls_ca="$2"; shift 2 ;;
      --authorizer) authorizer=1; shift ;;
      --super-user) supers+=("$2"); shift 2 ;;
      --config) configs+=("$2"); shift 2 ;;
      --heap) heap="$2"; shift 2 ;;
      --timeout) timeout="$2"; shift 2 ;;
      *) log "unknown option: $1"; usage ;;
    esac
  done
  [[ -n "$dir" && "$port" =~ ^[0-9]+$ && "$cport" =~ ^[0-9]+$ ]] || { log "start needs --dir, --port and --controller-port"; usage; }
  ((${#users[@]} > 0 || authorizer == 0)) || die "--authorizer needs at least one --user (SASL)" 2
  [[ -z "$tls_pem" || -n "$tls_ca" ]] || die "--tls-pem needs --tls-ca" 2
  require_installed
  check_java
  local owner_start
  owner_start="$(owner_start_time "$owner")" || exit 2
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  [[ ! -e "$dir/server.properties" ]] || die "$dir already holds a broker; use restart, or remove the directory" 2
  mkdir -p "$dir/data" "$dir/logs" "$dir/pids"

  local proto=PLAINTEXT cproto=PLAINTEXT
  if ((${#users[@]} > 0)); then
    proto=SASL_PLAINTEXT
    ((tls)) && proto=SASL_SSL
  elif ((tls)); then
    proto=SSL
  fi
  ((authorizer)) && cproto=SASL_PLAINTEXT

  local broker_pw plain_users="" scram_args=() u name pass
  broker_pw="$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  echo "$broker_pw" >"$dir/broker.password"
  for u in "${users[@]}"; do
    name="${u%%:*}"
    pass="${u#*:}"
    if [[ "$u" != *:* ]] || ! valid_name "$name" || ! valid_name "$pass"; then
      die "--user must be NAME:PASSWORD with [A-Za-z0-9._-] only, got '$u'" 2
    fi
    [[ "$name" != broker ]] || die "user name 'broker' is reserved for the broker itself" 2
    plain_users+=" user_$name=\"$pass\""
    scram_args+=(--add-scram "SCRAM-SHA-256=[name=$name,password=$pass]")
    scram_args+=(--add-scram "SCRAM-SHA-512=[name=$name,password=$pass]")
  done

  if ((tls)); then
    mkdir -p "$dir/tls"
    if [[ -n "$tls_pem" ]]; then
      cp "$tls_pem" "$dir/tls/server.pem"
      cp "$tls_ca" "$dir/tls/ca.pem"
    else
      gen_tls "$dir/tls"
    fi
  fi

  local plain_jaas="org.apache.kafka.common.security.plain.PlainLoginModule required username=\"broker\" password=\"$broker_pw\" user_broker=\"$broker_pw\"$plain_users;"
  {
    echo "# Written by scripts/kafka.sh start ($(date -u +%FT%TZ))"
    echo "process.roles=broker,controller"
    echo "node.id=1"
    echo "controller.quorum.bootstrap.servers=127.0.0.1:$cport"
    echo "listeners=CLIENT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport"
    echo "advertised.listeners=CLIENT://127.0.0.1:$port"
    echo "listener.security.protocol.map=CLIENT:$proto,CONTROLLER:$cproto"
    echo "inter.broker.listener.name=CLIENT"
    echo "controller.listener.names=CONTROLLER"
    echo "log.dirs=$dir/data"
    echo "num.partitions=1"
    echo "default.replication.factor=1"
    echo "min.insync.replicas=1"
    echo "offsets.topic.replication.factor=1"
    echo "offsets.topic.num.partitions=10"
    echo "transaction.state.log.replication.factor=1"
    echo "transaction.state.log.min.isr=1"
    echo "transaction.state.log.num.partitions=5"
    echo "share.coordinator.state.topic.replication.factor=1"
    echo "share.coordinator.state.topic.min.isr=1"
    echo "group.initial.rebalance.delay.ms=0"
    echo "auto.create.topics.enable=false"
    echo "log.cleaner.backoff.ms=1000"
    echo "log.cleaner.min.compaction.lag.ms=0"
    echo "log.cleaner.dedupe.buffer.size=16777216"
    echo "log.retention.check.interval.ms=5000"
    echo "log.initial.task.delay.ms=1000"
    echo "num.network.threads=2"
    echo "num.io.threads=4"
    echo "background.threads=4"
    echo "num.recovery.threads.per.data.dir=1"
    if [[ "$proto" == SASL_* ]]; then
      echo "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"
      echo "sasl.mechanism.inter.broker.protocol=PLAIN"
      echo "listener.name.client.plain.sasl.jaas.config=$plain_jaas"
      echo "listener.name.client.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
      echo "listener.name.client.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
    fi
    if [[ "$cproto" == SASL_PLAINTEXT ]]; then
      echo "sasl.mechanism.controller.protocol=PLAIN"
      echo "listener.name.controller.sasl.enabled.mechanisms=PLAIN"
      echo "listener.name.controller.plain.sasl.jaas.config=$plain_jaas"
    fi
    if ((tls)); then
      echo "ssl.keystore.type=PEM"
      echo "ssl.keystore.location=$dir/tls/server.pem"
      echo "ssl.truststore.type=PEM"
      echo "ssl.truststore.location=$dir/tls/ca.pem"
      echo "ssl.client.auth=none"
    fi
    if ((authorizer)); then
      local s supers_line="User:broker"
      for s in "${supers[@]}"; do
        valid_name "$s" || die "bad --super-user '$s'" 2
        supers_line+=";User:$s"
      done
      echo "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer"
      echo "super.users=$supers_line"
      echo "allow.everyone.if.no.acl.found=false"
    fi
    local c
    for c in "${configs[@]}"; do
      [[ "$c" == *=* ]] || die "--config must be KEY=VALUE, got '$c'" 2
      echo "$c"
    done
  } >"$dir/server.properties"
  write_log4j "$dir"
  echo "$heap" >"$dir/heap"

  # A port already taken would otherwise look like a ready broker.
  if port_open "$port" || port_open "$cport"; then
    die "port $port or $cport is already in use" 3
  fi

  local cluster_id
  # A URL-safe base64 id can start with '-', which the storage tool would read as an option:
  # draw again until it starts with a letter or digit.
  cluster_id="-"
  while [[ "$cluster_id" != [A-Za-z0-9]* ]]; do
    cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
  done
  echo "$cluster_id" >"$dir/cluster.id"
  STRAIT_BROKER_DIR="$dir" java -Xmx256m -Dlog4j2.configurationFile="$dir/log4j2.properties" \
    -cp "$LIBS/*" kafka.tools.StorageTool format --config "$dir/server.properties" \
    --cluster-id "$cluster_id" --standalone "${scram_args[@]}" >"$dir/format.log" 2>&1 \
    || { cat "$dir/format.log" >&2; die "kafka.tools.StorageTool format failed (see $dir/format.log)"; }

  launch "$dir" "$owner" "$owner_start" "$timeout"
}

# Starts kafka.Kafka on an already formatted DIR, waits until it is ready.
launch() {
  local dir="$1" owner="$2" owner_start="$3" timeout="$4"
  local heap port log_offset pid
  heap="$(cat "$dir/heap")"
  port="$(sed -n 's/^advertised.listeners=CLIENT:\/\/127.0.0.1:\([0-9]*\)$/\1/p' "$dir/server.properties")"
  log_offset="$(stat -c %s "$dir/logs/server.log" 2>/dev/null || echo 0)"
  STRAIT_BROKER_DIR="$dir" java "-Xmx$heap" -Xms256m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$dir/log4j2.properties" -Dkafka.logs.dir="$dir/logs" \
    -cp "$LIBS/*" kafka.Kafka "$dir/server.properties" </dev/null >>"$dir/stdout.log" 2>&1 &
  pid=$!
  record_pid "$dir" broker "$pid"
  start_watchdog "$dir" "$owner" "$owner_start"

  local deadline=$((SECONDS + timeout))
  while true; do
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid" 2>/dev/null || true
      tail -n 30 "$dir/logs/server.log" "$dir/stdout.log" >&2 2>/dev/null || true
      if grep -q "Address already in use" "$dir/logs/server.log" "$dir/stdout.log" 2>/dev/null; then
        stop_all "$dir" KILL
        die "Kafka in $dir exited: a port is already in use" 3
      fi
      stop_all "$dir" KILL
      die "Kafka in $dir exited during startup; logs: $dir/logs/server.log $dir/stdout.log"
    fi
    if tail -c "+$((log_offset + 1))" "$dir/logs/server.log" 2>/dev/null | grep -q "Kafka Server started" \
      && port_open "$port"; then
      break
    fi
    if ((SECONDS >= deadline)); then
      stop_all "$dir" KILL
      die "Kafka in $dir not ready after ${timeout}s; logs: $dir/logs/server.log"
    fi
    sleep 0.2
  done
  echo "127.0.0.1:$port" >"$dir/bootstrap"
  log "Kafka ready on 127.0.0.1:$port (pid $pid, dir $dir)"
  echo "127.0.0.1:$port"
}

cmd_restart() {
  local dir="" owner="$PPID" timeout=120
  while (($#)); do
    case "$1" in
      --dir) dir="$2"; shift 2 ;;
      --owner) owner="$2"; shift 2 ;;
      --timeout) timeout="$2"; shift 2 ;;
      *) log "unknown option: $1"; usage ;;
    esac
  done
  [[ -n "$dir" && -f "$dir/server.properties" ]] || die "restart needs --dir of a started broker" 2
  dir="$(cd "$dir" && pwd)"
  require_installed
  local owner_start
  owner_start="$(owner_start_time "$owner")" || exit 2
  stop_all "$dir" TERM 30
  launch "$dir" "$owner" "$owner_start" "$timeout"
}

dir_arg() { # parses --dir DIR [--timeout S] for stop/kill; sets DIR and GRACE
  DIR="" GRACE=30
  while (($#)); do
    case "$1" in
      --dir) DIR="$2"; shift 2 ;;
      --timeout) GRACE="$2"; shift 2 ;;
      *) log "unknown option: $1"; usage ;;
    esac
  done
  [[ -n "$DIR" && -d "$DIR" ]] || die "needs --dir of an existing broker directory" 2
  DIR="$(cd "$DIR" && pwd)"
}

main() {
  local cmd="${1:-}"
  (($#)) && shift
  case "$cmd" in
    install) cmd_install ;;
    libs) require_installed; echo "$LIBS" ;;
    mm2-libs) [[ -f "$MM2_LIBS/.installed" ]] || die "MirrorMaker 2 jars not installed; run scripts/kafka.sh install" 4; echo "$MM2_LIBS" ;;
    start) cmd_start "$@" ;;
    restart) cmd_restart "$@" ;;
    stop) dir_arg "$@"; stop_all "$DIR" TERM "$GRACE" ;;
    kill) dir_arg "$@"; stop_all "$DIR" KILL ;;
    -h | --help | help | "") usage ;;
    *) log "unknown command: $cmd"; usage ;;
  esac
}

main "$@"
