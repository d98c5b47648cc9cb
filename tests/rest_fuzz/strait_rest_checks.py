"""Schemathesis hooks for tests/rest_fuzz.rs: a check that a rejected call changed no state.

Loaded with SCHEMATHESIS_HOOKS=strait_rest_checks (this directory on PYTHONPATH). Needs one
worker (-w 1): after every call the listing of cutovers is read again; a call answered with
4xx must leave it exactly as the previous call left it, a 2xx call sets the new baseline.
STRAIT_FUZZ_BASE is the API's base URL, STRAIT_FUZZ_TOKEN a valid token. Every call is
counted by status in STRAIT_FUZZ_STATS (a JSON file) for the Rust test to assert on.
"""

import json
import os
import urllib.request

import schemathesis

BASE = os.environ["STRAIT_FUZZ_BASE"]
TOKEN = os.environ["STRAIT_FUZZ_TOKEN"]
STATS = os.environ["STRAIT_FUZZ_STATS"]

_state = {"listing": None, "counts": {}}


def _listing():
    request = urllib.request.Request(
        BASE + "/v1/cutovers", headers={"Authorization": "Bearer " + TOKEN}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _count(status):
    key = str(status)
    _state["counts"][key] = _state["counts"].get(key, 0) + 1
    with open(STATS, "w") as f:
        json.dump(_state["counts"], f)


_state["listing"] = _listing()


@schemathesis.check
def rejected_calls_change_nothing(ctx, response, case):
    status = response.status_code
    _count(status)
    after = _listing()
    if 400 <= status < 500 and after != _state["listing"]:
        raise AssertionError(
            "%s %s was rejected with %d but changed the cutovers: before %s, after %s"
            % (case.method, case.formatted_path, status, _state["listing"], after)
        )
    _state["listing"] = after
    return None
