#!/usr/bin/env python3
"""A node that speaks to the master exactly as an original ZeROSMQ node (pyzmq) does.

Text control requests `COMMAND NODE TOPIC` on a REQ socket, `REQUEST GRANT <port>` replies, PUB and
SUB sockets on the granted ports, single frames `TOPIC payload`, the subscriber subscribed to the
topic's bytes and stripping the `TOPIC ` prefix. The only thing it does not copy is the original's
1-second sleep: it handshakes with the Rust node instead (hello until acked), so no timing is
assumed.

Usage: original_node.py tcp://127.0.0.1:PORT   (exit code 0 and `OK` on success)
"""
import sys
import time

import zmq

NODE = "pyNode.py"
OUT, IN = "from_python", "from_rust"
COUNT = 100
DEADLINE = time.monotonic() + 20


def fail(why):
    print(f"FAIL: {why}", flush=True)
    sys.exit(1)


def main():
    control_endpoint = sys.argv[1]
    host = control_endpoint.rsplit(":", 1)[0]
    ctx = zmq.Context()
    req = ctx.socket(zmq.REQ)
    req.RCVTIMEO = 10_000
    req.connect(control_endpoint)

    def request(command, node, topic):
        req.send_string(f"{command} {node} {topic}")
        return req.recv_string()

    reply = request("REQUEST_PUB", NODE, OUT)
    if not reply.startswith("REQUEST GRANT "):
        fail(f"publish grant: {reply!r}")
    pub = ctx.socket(zmq.PUB)
    pub.connect(f"{host}:{int(reply.split()[2])}")

    reply = request("REQUEST_SUB", NODE, IN)
    if not reply.startswith("REQUEST GRANT "):
        fail(f"subscribe grant: {reply!r}")
    sub = ctx.socket(zmq.SUB)
    sub.connect(f"{host}:{int(reply.split()[2])}")
    sub.setsockopt(zmq.SUBSCRIBE, IN.encode())

    def receive(timeout_ms):
        if sub.poll(timeout_ms):
            frame = sub.recv()
            if not frame.startswith(IN.encode() + b" "):
                fail(f"frame without topic prefix: {frame!r}")
            return frame[len(IN) + 1:].decode()
        return None

    # Handshake: say hello until the Rust node acknowledges (both paths are then live).
    while True:
        if time.monotonic() > DEADLINE:
            fail("no ack from the Rust node")
        pub.send_string(f"{OUT} hello")
        if receive(20) == "ack":
            break

    for i in range(COUNT):
        pub.send_string(f"{OUT} data {i} ünïcödé, commas and spaces")
    pub.send_string(f"{OUT} END")

    expected = 0
    while expected < COUNT:
        if time.monotonic() > DEADLINE:
            fail(f"got {expected} of {COUNT} replies")
        msg = receive(1000)
        if msg is None or msg == "ack":
            continue
        if msg != f"reply {expected}":
            fail(f"expected 'reply {expected}', got {msg!r}")
        expected += 1

    topics = request("LIST_ALL_TOPICS", NODE, "null").split(",")
    if sorted(topics) != sorted([OUT, IN]):
        fail(f"topic list {topics!r}")
    graph = request("REQUEST_MAP", "null", "null")
    if '"pyNode.py" [label="pyNode"]' not in graph or "rustNode" not in graph:
        fail(f"graph {graph!r}")
    for command, topic in (("REQUEST_STOP_PUB", OUT), ("REQUEST_STOP_SUB", IN)):
        reply = request(command, NODE, topic)
        if reply != "REQUEST GRANT":
            fail(f"{command}: {reply!r}")
    print("OK", flush=True)


if __name__ == "__main__":
    main()
