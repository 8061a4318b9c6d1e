"""An independent Zenoh peer for the bridge tests, written from Zenoh's Python docs only.

Usage: zenoh_peer.py ENDPOINT...  Subscribes `zerosmq/**` and prints `got KEY PAYLOAD` for every
sample; each stdin line `put TEXT` is put on key `zerosmq/py`.
"""
import json
import sys
import time

import zenoh


def main():
    conf = zenoh.Config()
    conf.insert_json5("mode", '"peer"')
    conf.insert_json5("connect/endpoints", json.dumps(sys.argv[1:]))
    conf.insert_json5("scouting/multicast/enabled", "false")
    with zenoh.open(conf) as session:
        def on_sample(sample):
            print(f"got {sample.key_expr} {sample.payload.to_string()}", flush=True)

        sub = session.declare_subscriber("zerosmq/**", on_sample)
        pub = session.declare_publisher("zerosmq/py")
        # Ready once a subscriber on the other side (bridge B) matches our key.
        for _ in range(400):
            if pub.matching_status.matching:
                break
            time.sleep(0.05)
        print("ready", flush=True)
        for line in sys.stdin:
            if line.startswith("put "):
                pub.put(line[4:].rstrip("\n"))
        sub.undeclare()


if __name__ == "__main__":
    main()
