"""An independent Zenoh peer for the bridge tests, written from Zenoh's Python docs only.

Usage: zenoh_peer.py ENDPOINT...  Subscribes `zerosmq/**` and prints `got KEY PAYLOAD` for every
sample (`hex:...` when it is not UTF-8), preceded by `encoding KEY ENCODING` when the sample's
encoding is not the default; each stdin line `put TEXT` is put on key `zerosmq/py`, and
`putenc KEY ENCODING TEXT` on KEY with that encoding.
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
            encoding = str(sample.encoding)
            if encoding != "zenoh/bytes":
                print(f"encoding {sample.key_expr} {encoding}", flush=True)
            try:
                text = sample.payload.to_string()
            except Exception:
                text = "hex:" + sample.payload.to_bytes().hex()
            print(f"got {sample.key_expr} {text}", flush=True)

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
            elif line.startswith("putenc "):
                # putenc KEY ENCODING TEXT: a put on any key with the given encoding.
                _, key, encoding, text = line.rstrip("\n").split(" ", 3)
                session.put(key, text, encoding=encoding)
        sub.undeclare()


if __name__ == "__main__":
    main()
