#!/usr/bin/env bash
# Validates the deploy artefacts with what this machine has: YAML parses (compose, Kubernetes),
# the Grafana dashboard uses only metrics strait exports, the sample config loads (strait plan
# exits 1 for unreachable clusters, 2 for a bad config), the systemd unit passes
# `systemd-analyze verify`. Usage: deploy/check.sh [path/to/strait]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
STRAIT="${1:-$ROOT/target/release/strait}"
# systemd wants an absolute ExecStart.
[[ -e "$STRAIT" ]] && STRAIT="$(cd "$(dirname "$STRAIT")" && pwd)/$(basename "$STRAIT")"
"${STRAIT_PYTHON:-python3}" - "$HERE" "$ROOT" <<'PY'
import json, re, sys, yaml
here, root = sys.argv[1], sys.argv[2]
for f in ("compose.yaml", "k8s/strait.yaml"):
    docs = [d for d in yaml.safe_load_all(open(f"{here}/{f}")) if d]
    print(f"ok   {f}: {len(docs)} document(s)")
k8s = list(yaml.safe_load_all(open(f"{here}/k8s/strait.yaml")))
cfg = next(d for d in k8s if d and d["kind"] == "ConfigMap")["data"]["strait.toml"]
assert cfg == open(f"{here}/strait.toml").read(), "the ConfigMap must embed deploy/strait.toml"
print("ok   k8s ConfigMap embeds deploy/strait.toml")
exported = set()
for src in ("control-api/src/metrics.rs", "linker/src/metrics.rs"):
    exported |= set(re.findall(r"strait_[a-z_]+", open(f"{root}/{src}").read()))
# A histogram family exports <name>_bucket, _sum and _count.
used = {re.sub(r"_(bucket|sum|count)$", "", m) if re.sub(r"_(bucket|sum|count)$", "", m) in exported else m
        for m in re.findall(r"strait_[a-z_]+", open(f"{here}/grafana-dashboard.json").read())}
missing = sorted(used - exported)
assert not missing, f"the dashboard uses metrics strait does not export: {missing}"
json.load(open(f"{here}/grafana-dashboard.json"))
print(f"ok   grafana-dashboard.json: {len(used)} metrics, all exported")
PY
if [[ -x "$STRAIT" ]]; then
  rc=0
  timeout 60 "$STRAIT" plan --config "$HERE/strait.toml" >/dev/null 2>&1 || rc=$?
  [[ $rc == 1 ]] || { echo "FAIL deploy/strait.toml: strait plan exited $rc (2 = bad config)"; exit 1; }
  echo "ok   strait.toml loads (plan: clusters unreachable here, as expected)"
  if command -v systemd-analyze >/dev/null; then
    unit="$(mktemp --suffix=.service)"
    sed "s|/usr/local/bin/strait|$STRAIT|" "$HERE/systemd/strait.service" >"$unit"
    rc=0
    systemd-analyze verify "$unit" || rc=$?
    rm -f "$unit"
    ((rc == 0)) || { echo "FAIL systemd unit: systemd-analyze verify exited $rc"; exit 1; }
    echo "ok   systemd unit verifies"
  fi
else
  echo "skip config and systemd checks: no strait binary at $STRAIT (cargo build --release)"
fi
