"""schemathesis hooks for the contract run (tests/contract/run.sh).

Two things no schema can say, supplied so that the stateful phase walks
the whole life of a booking (hold, read, confirm, read, cancel):
- which event and section exist: in the stateful phase, a schema-valid
  hold is of one place in a section of the demo event;
- a confirm needs a receipt the payment service signed for the hold's
  total: a schema-valid confirm of a live hold gets one, signed with the
  server's demo payment secret by `boxoffice receipt` (the stand-in for
  the payment page);
- an Idempotency-Key is unique per distinct request: a schema-valid
  case's key is made fresh (the same key for another body is refused,
  rightly, with 422).
Negative cases, and the other phases' cases, are left as generated.
"""

import json
import os
import random
import uuid
import subprocess
import urllib.parse
import urllib.request

import schemathesis

BIN = os.environ["BOXOFFICE_BIN"]
DATA_DIR = os.environ["BOXOFFICE_DATA_DIR"]
BASE = os.environ["BOXOFFICE_URL"]
FAN_TOKEN = os.environ["FAN_TOKEN"]


def _negative(case):
    meta = getattr(case, "_meta", None)
    return meta is not None and meta.generation.mode.is_negative


def _stateful(case):
    meta = getattr(case, "_meta", None)
    return meta is not None and str(meta.phase.name).lower() == "stateful"


SECTIONS = ["FLOOR"] + [chr(c) for c in range(ord("A"), ord("T") + 1)]


def _live_hold(hold_id):
    url = f"{BASE}/v1/holds/{urllib.parse.quote(hold_id, safe='')}"
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {FAN_TOKEN}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            hold = json.load(resp)
    except Exception:
        return None
    return hold if hold.get("status") == "held" else None


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    if _negative(case):
        return
    headers = case.headers or {}
    if "Idempotency-Key" in headers:
        case.headers = {**headers, "Idempotency-Key": uuid.uuid4().hex}
    if case.operation.path == "/v1/events/{event}/holds" and _stateful(case):
        case.path_parameters = {**(case.path_parameters or {}), "event": "demo"}
        case.body = {"section": random.choice(SECTIONS), "quantity": 1}
        return
    if case.operation.path != "/v1/holds/{id}/confirm":
        return
    if not isinstance(case.body, dict):
        return
    hold_id = (case.path_parameters or {}).get("id")
    hold = _live_hold(hold_id) if isinstance(hold_id, str) else None
    if hold is None:
        return
    receipt = subprocess.run(
        [BIN, "receipt", "--hold", hold_id, "--amount", str(hold["total_price"]),
         "--currency", hold["currency"], "--data-dir", DATA_DIR],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    case.body = {"email": "fan@example.com", "receipt": receipt}
