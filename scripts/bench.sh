#!/usr/bin/env bash
# strait's benchmarks on real brokers (not part of scripts/test.sh or CI):
#
#   scripts/bench.sh [--quick] [-- extra args for benches/mirror_bench]
#
# 1. installs what is missing (Kafka 4.3.1 and MirrorMaker 2 jars, tansu 0.6.0, the venv),
# 2. runs benches/group_sync_delay.rs (group sync delay p50/p99, target/bench/group_sync_delay.json),
# 3. runs benches/many_topics.rs (time until 200 new topics x 5 partitions all move,
#    target/bench/many_topics.json),
# 4. runs benches/cutover_pause.rs (the write pause of a cutover of 10 and 200 topics x 5
#    partitions, target/bench/cutover_pause.json),
# 5. runs benches/mirror_bench (ceiling, strait, naive rdkafka, MirrorMaker 2, latency, RSS),
#    which also reads the group sync result and prints one table, writing
#    target/bench/mirror.{json,svg,txt}.
#
# --quick: small backlogs (16 MB, a 100-partition topic of 8 MB, 5 s latency, 20 topics, a wave of 10) to check that
# everything runs; the default is 128 MB per workload and 1,000 partitions (100 MB), about
# 15-25 minutes on 2 cores. Both benches are built with the release (bench) profile.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export STRAIT_CACHE="${STRAIT_CACHE:-$HOME/.cache/strait}"
export STRAIT_SCRIPTS="$ROOT/scripts"
export STRAIT_KAFKA_LIBS="${STRAIT_KAFKA_LIBS:-$STRAIT_CACHE/kafka-4.3.1/libs}"
export STRAIT_TANSU_BIN="${STRAIT_TANSU_BIN:-$STRAIT_CACHE/tansu-0.6.0/bin/tansu}"
export STRAIT_PYTHON="${STRAIT_PYTHON:-$STRAIT_CACHE/venv/bin/python}"

QUICK=()
MANY=(--topics 200)
WAVES=(--topics 10,200)
if [[ "${1:-}" == "--quick" ]]; then
  QUICK=(--mb 16 --large-mb 8 --large-partitions 100 --latency-secs 5)
  MANY=(--topics 20)
  WAVES=(--topics 10)
  shift
fi
[[ "${1:-}" == "--" ]] && shift

[[ -f "$STRAIT_CACHE/kafka-4.3.1/mm2-libs/.installed" ]] || bash scripts/kafka.sh install
[[ -x "$STRAIT_TANSU_BIN" ]] || bash scripts/tansu.sh install
[[ -x "$STRAIT_PYTHON" ]] || bash scripts/python-env.sh

cargo bench --bench group_sync_delay
cargo bench --bench many_topics -- "${MANY[@]}"
cargo bench --bench cutover_pause -- "${WAVES[@]}"
cargo bench --bench mirror -- "${QUICK[@]}" "$@"
