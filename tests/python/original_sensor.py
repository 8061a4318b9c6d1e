#!/usr/bin/env python3
"""An original ZeROSMQ sensor node (pyzmq, text protocol): asks the master for a publish grant
for TOPIC and publishes `TOPIC <number>` frames, the numbers as text as original nodes send
them, until it is killed. Prints `READY` once it is connected.

Usage: original_sensor.py tcp://127.0.0.1:PORT TOPIC
"""
import sys
import time

import zmq


def main():
    control_endpoint, topic = sys.argv[1], sys.argv[2]
    host = control_endpoint.rsplit(":", 1)[0]
    ctx = zmq.Context()
    req = ctx.socket(zmq.REQ)
    req.RCVTIMEO = 10_000
    req.connect(control_endpoint)
    req.send_string(f"REQUEST_PUB pySensor {topic}")
    reply = req.recv_string()
    if not reply.startswith("REQUEST GRANT "):
        print(f"FAIL: publish grant: {reply!r}", flush=True)
        sys.exit(1)
    pub = ctx.socket(zmq.PUB)
    pub.connect(f"{host}:{int(reply.split()[2])}")
    print("READY", flush=True)
    i = 0
    while True:
        pub.send(f"{topic} {i * 0.5}".encode())
        i += 1
        # A sensor's pace, not a synchronisation: the test waits for what Foxglove receives.
        time.sleep(0.01)


if __name__ == "__main__":
    main()
