"""What a rented machine runs first: fetch this control plane's agent from it, and start it.

The machine boots the instance's image, which has no takeover and may have no pip: the script
needs only ``python3`` of the control plane's minor version (its compiled dependencies are built
for one). It downloads the agent bundle (takeover.control.bundle) with the rental's one-time
token, and starts the agent with the marketplace's NAT read from the container's environment
(Vast's ``PUBLIC_IPADDR`` and ``VAST_TCP_PORT_<n>`` / ``VAST_UDP_PORT_<n>``: the outside address
of each port the rent asked for). When it cannot, it says why in the machine's log and to the
control plane (``POST /api/v1/agent/failed``), which fails the rental at once and gives the
machine back. Vast takes at most 4,096 characters of onstart.
"""

from __future__ import annotations

# The Python part, read from a here-document: no quoting to escape, no file to write first.
_BOOTSTRAP = r"""
import io, json, os, platform, sys, tarfile, time, urllib.error as ue, urllib.request as rq
url, token = os.environ["TAKEOVER_URL"].rstrip("/"), os.environ["TAKEOVER_JOIN_TOKEN"]
auth = {"Authorization": "Bearer " + token}
def fail(reason):
    print("takeover onstart: " + reason, file=sys.stderr, flush=True)
    body = json.dumps({"reason": reason[:2000]}).encode()
    try:
        rq.urlopen(rq.Request(url + "/api/v1/agent/failed", body, {**auth, "Content-Type": "application/json"}), timeout=30)
    except OSError as e:
        print("takeover onstart: could not tell the control plane: %s" % e, file=sys.stderr)
    sys.exit(1)
have = "%d.%d" % sys.version_info[:2], platform.machine()
s3 = os.environ.get("TAKEOVER_SNAPSHOT_STORE", "").startswith("s3://")
for wait in [2] * 300 + [0]:  # a control plane away (restarting, failing over): ten minutes
    try:
        with rq.urlopen(rq.Request(url + "/api/v1/agent/bundle" + "?s3=true" * s3, headers=auth), timeout=600) as r:
            need = r.headers["X-Takeover-Python"], r.headers["X-Takeover-Machine"]
            if need != have:
                fail("the image's python3 is %s on %s; this control plane's agent needs Python %s on %s: "
                     "rent with an image that has it" % (*have, *need))
            data = r.read()
            break
    except ue.HTTPError as e:
        if e.code < 500:
            fail("the control plane refused the agent: HTTP %d %s" % (e.code, e.read()[:300].decode(errors="replace")))
        error = e
    except OSError as e:
        error = e
    if not wait:
        fail("could not download the agent from %s: %s" % (url, error))
    print("takeover onstart: control plane not reachable (%s), trying again" % error, flush=True)
    time.sleep(wait)
home = os.path.abspath(os.environ.get("TAKEOVER_AGENT_CODE", "takeover-agent-code"))
with tarfile.open(fileobj=io.BytesIO(data)) as tar:
    tar.extractall(home, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
env = os.environ  # the agent re-executes itself (and starts keepers): they find it by PYTHONPATH
env["PYTHONPATH"], env["PYTHONNOUSERSITE"] = os.path.join(home, "site"), "1"
if env.get("PUBLIC_IPADDR"):
    env.setdefault("NODE_HOST", env["PUBLIC_IPADDR"])
pairs = ["%s%s:%s" % (k[14:], "/udp" if k.startswith("VAST_UDP") else "", v)
         for k, v in sorted(env.items()) if k[:14] in ("VAST_TCP_PORT_", "VAST_UDP_PORT_")]
if pairs:
    env.setdefault("NODE_PORT_MAP", ",".join(pairs))
sys.path.insert(0, env["PYTHONPATH"])  # before the image's own packages
try:
    from takeover.cli.app import main
except Exception as e:  # a compiled dependency the image cannot load, say
    fail("the agent cannot start in this image: %s: %s" % (type(e).__name__, e))
print("takeover onstart: agent %s fetched, starting it" % r.headers["X-Takeover-Sha256"][:12], flush=True)
sys.argv = ["takeover", "agent"]
main()
"""

ONSTART = (
    """#!/bin/sh
# takeover: start this control plane's agent, fetched from it (no package index, no pip)
if ! command -v python3 >/dev/null 2>&1; then
  reason="the image has no python3: the takeover agent needs Python $TAKEOVER_PYTHON in the image"
  echo "takeover onstart: $reason" >&2
  body="{\\"reason\\": \\"$reason\\"}"
  if command -v curl >/dev/null 2>&1; then
    curl -sS -m 30 -H "Authorization: Bearer $TAKEOVER_JOIN_TOKEN" -H "Content-Type: application/json" \\
      -d "$body" "$TAKEOVER_URL/api/v1/agent/failed"
  elif command -v wget >/dev/null 2>&1; then
    wget -q -O /dev/null --header "Authorization: Bearer $TAKEOVER_JOIN_TOKEN" \\
      --header "Content-Type: application/json" --post-data "$body" "$TAKEOVER_URL/api/v1/agent/failed"
  fi
  exit 1
fi
exec python3 - <<'PY'"""
    + _BOOTSTRAP
    + "PY\n"
)
