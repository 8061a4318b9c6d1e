"""A Zenoh router for the bridge tests (instead of zenohd), written from Zenoh's Python docs only.

Usage: zenoh_router.py ENDPOINT  Opens a session in router mode listening on ENDPOINT (for
example tcp/127.0.0.1:7447), multicast scouting off, prints `ready` and routes until stdin closes
or the process is killed.
"""
import json
import sys

import zenoh


def main():
    conf = zenoh.Config()
    conf.insert_json5("mode", '"router"')
    conf.insert_json5("listen/endpoints", json.dumps([sys.argv[1]]))
    conf.insert_json5("scouting/multicast/enabled", "false")
    with zenoh.open(conf) as session:
        # The listener is bound once open returns.
        print(f"ready {session.zid()}", flush=True)
        for _ in sys.stdin:
            pass


if __name__ == "__main__":
    main()
