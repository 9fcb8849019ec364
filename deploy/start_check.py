#!/usr/bin/env python3
"""Starts the server as each rendered overlay would start it, on loopback.

For every overlay: renders it (kubectl kustomize), takes the StatefulSet's
container (its args and env) and the ConfigMaps it mounts, and runs the
binary given as the first argument with exactly those settings, twice:

1. with no Secret at all: it must refuse to start, naming every trust
   setting a real sale needs. A server that started here would be trusting
   demo keys (or nothing), which no overlay may ship.
2. with a Secret holding test values (tests/fixtures/issuer/jwks.json, an
   issuer, an audience, a payment secret, tokens): it must serve, with no
   demo (`GET /v1/demo` is 404, no demo event), `/readyz` 200, and
   `/metrics` only on its own listener.

Only what a test host must change is changed, through the environment
(which wins over the configuration file): the listeners (127.0.0.1, port 0),
the data directory, and the ConfigMaps' mount path (files are written to a
temporary directory and every path under the mount is pointed there).
"""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The trust settings a real sale needs; the server must name each one.
MISSING = [
    "--jwks (BOXOFFICE_JWKS)",
    "--jwt-issuer (BOXOFFICE_JWT_ISSUER)",
    "--jwt-audience (BOXOFFICE_JWT_AUDIENCE)",
    "--payment-secret (BOXOFFICE_PAYMENT_SECRET) or --payment-jwks (BOXOFFICE_PAYMENT_JWKS)",
]

# A Secret as an operator would create it (deploy/README.md, "Secrets"),
# with test values.
TEST_SECRET = {
    "jwks": os.path.join(ROOT, "tests/fixtures/issuer/jwks.json"),
    "jwt-issuer": "https://fanclub.example",
    "jwt-audience": "boxoffice",
    "payment-secret": "a-secret-the-payment-service-shares-with-us",
    "admin-token": "deploy-check-admin-token",
    "scanner-token": "deploy-check-scanner-token",
    "ticket-key": "ab" * 32,
}


def fail(message):
    print(f"start check: {message}", file=sys.stderr)
    sys.exit(1)


def render(overlay):
    out = subprocess.run(
        ["kubectl", "kustomize", overlay], check=True, capture_output=True, text=True
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def environment(docs, secrets, tmp):
    """The container's env as the kubelet would give it, with `secrets` as
    the Secrets' contents, and the host's paths put right."""
    sets = [d for d in docs if d["kind"] == "StatefulSet"]
    if len(sets) != 1:
        fail(f"expected one StatefulSet, found {len(sets)}")
    sts = sets[0]
    spec = sts["spec"]["template"]["spec"]
    container = next(c for c in spec["containers"] if c["name"] == "boxoffice")
    config_maps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    mounts = {}
    for volume in spec.get("volumes", []):
        if "configMap" not in volume:
            continue
        mount = next(
            m["mountPath"]
            for m in container.get("volumeMounts", [])
            if m["name"] == volume["name"]
        )
        local = os.path.join(tmp, "mounts", volume["name"])
        os.makedirs(local, exist_ok=True)
        for name, text in config_maps[volume["configMap"]["name"]].get("data", {}).items():
            with open(os.path.join(local, name), "w") as f:
                f.write(text.replace(mount, local))
        mounts[mount] = local
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOXOFFICE_")}
    for item in container.get("env", []):
        name = item["name"]
        if "value" in item:
            value = item["value"]
        elif "fieldRef" in item.get("valueFrom", {}):
            path = item["valueFrom"]["fieldRef"]["fieldPath"]
            if path != "metadata.name":
                fail(f"{name}: fieldRef {path} is not simulated")
            value = f"{sts['metadata']['name']}-0"
        elif "secretKeyRef" in item.get("valueFrom", {}):
            ref = item["valueFrom"]["secretKeyRef"]
            if ref["key"] not in secrets:
                if not ref.get("optional", False):
                    fail(f"{name}: the pod would not start without {ref['name']}/{ref['key']}")
                continue
            value = secrets[ref["key"]]
        else:
            fail(f"{name}: unknown env source {item}")
        for mount, local in mounts.items():
            value = value.replace(mount, local)
        env[name] = value
    env.update(
        {
            "BOXOFFICE_LISTEN": "127.0.0.1:0",
            "BOXOFFICE_METRICS_LISTEN": "127.0.0.1:0",
            "BOXOFFICE_DATA_DIR": os.path.join(tmp, "data"),
            "RUST_LOG": "warn",
        }
    )
    return container.get("args", []), env


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def refuses(binary, overlay, docs):
    with tempfile.TemporaryDirectory() as tmp:
        args, env = environment(docs, {}, tmp)
        try:
            run = subprocess.run(
                [binary, *args], env=env, capture_output=True, text=True, timeout=30
            )
        except subprocess.TimeoutExpired:
            fail(f"{overlay}: without its Secret the server started (it trusts demo keys)")
        if run.returncode == 0:
            fail(f"{overlay}: without its Secret the server exited 0")
        missing = [m for m in MISSING if m not in run.stderr]
        if missing:
            fail(f"{overlay}: the refusal does not name {missing}:\n{run.stderr}")
        for demo_key in ("issuer.key", "payment.key"):
            if os.path.exists(os.path.join(tmp, "data", demo_key)):
                fail(f"{overlay}: the refused start made a demo key ({demo_key})")
        print(f"   {overlay}: without its Secret: refused, naming every missing setting")


def serves(binary, overlay, docs):
    with tempfile.TemporaryDirectory() as tmp:
        args, env = environment(docs, TEST_SECRET, tmp)
        child = subprocess.Popen(
            [binary, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            base = metrics = None
            deadline = time.time() + 60
            while base is None and time.time() < deadline:
                line = child.stdout.readline()
                if not line:
                    fail(f"{overlay}: with its Secret the server exited:\n{child.stderr.read()}")
                m = re.match(r"boxoffice metrics on (http://\S+)", line)
                if m:
                    metrics = m.group(1)
                m = re.match(r"boxoffice listening on (http://\S+)", line)
                if m:
                    base = m.group(1)
            if base is None or metrics is None:
                fail(f"{overlay}: the server named no listener")
            checks = [
                (f"{base}/readyz", 200),
                (f"{base}/v1/demo", 404),
                (f"{base}/v1/events/demo", 404),
                (f"{base}/metrics", 404),
                (f"{metrics}/metrics", 200),
            ]
            for url, want in checks:
                status, _ = get(url)
                if status != want:
                    fail(f"{overlay}: GET {url} answered {status}, not {want}")
            status, body = get(f"{base}/v1/events")
            if status != 200 or json.loads(body) != []:
                fail(f"{overlay}: GET /v1/events: {status} {body!r} (a real sale makes no demo event)")
            for demo_key in ("issuer.key", "payment.key"):
                if os.path.exists(os.path.join(tmp, "data", demo_key)):
                    fail(f"{overlay}: a real sale made a demo key ({demo_key})")
            print(f"   {overlay}: with its Secret: serves, no demo, metrics on their own listener")
        finally:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()


def main():
    if len(sys.argv) != 2:
        fail("usage: start_check.py <boxoffice binary>")
    binary = os.path.abspath(sys.argv[1])
    overlays = sorted(os.listdir(os.path.join(ROOT, "deploy/overlays")))
    if not overlays:
        fail("no overlays")
    for name in overlays:
        overlay = os.path.join(ROOT, "deploy/overlays", name)
        docs = render(overlay)
        refuses(binary, name, docs)
        serves(binary, name, docs)


if __name__ == "__main__":
    main()
