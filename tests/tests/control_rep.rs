//! The control port's REP semantics, seen from libzmq DEALER sockets (real TCP): the envelope
//! (routing frames up to the empty delimiter) comes back in front of the one reply, a peer that
//! pipelines requests gets its replies in order, and a message without the envelope is dropped
//! while the connection and the next request are served.

use zerosmq_tests::{start_master, WAIT};

fn dealer(ctx: &zmq::Context, endpoint: &str) -> zmq::Socket {
    let d = ctx.socket(zmq::DEALER).unwrap();
    d.set_linger(0).unwrap();
    d.set_rcvtimeo(WAIT.as_millis() as i32).unwrap();
    d.connect(endpoint).unwrap();
    d
}

#[test]
fn the_envelope_comes_back_and_pipelined_replies_keep_their_order() {
    let master = start_master();
    let ctx = zmq::Context::new();
    let d = dealer(&ctx, &master.control_endpoint());

    // Routing frames as a ROUTER in between would add them.
    d.send_multipart([&b"hop-1"[..], b"hop-2", b"", b"LIST_NODES null null"], 0)
        .unwrap();
    let reply = d.recv_multipart(0).unwrap();
    assert_eq!(reply.len(), 4, "{reply:?}");
    assert_eq!(&reply[..3], [&b"hop-1"[..], b"hop-2", b""]);

    // Pipelined: every reply names its request's topic, in the order sent.
    const N: usize = 200;
    for i in 0..N {
        let request = format!("TOPIC_INFO null pipelined-{i}");
        d.send_multipart([&b""[..], request.as_bytes()], 0).unwrap();
    }
    for i in 0..N {
        let reply = d.recv_multipart(0).unwrap();
        let text = String::from_utf8_lossy(&reply[1]).into_owned();
        assert!(
            text.starts_with("ERROR unknown-topic") && text.contains(&format!("'pipelined-{i}'")),
            "reply {i}: {text}"
        );
    }

    // No envelope: no reply can reach it, so it is dropped; the next request is answered.
    d.send(&b"LIST_NODES null null"[..], 0).unwrap();
    d.send_multipart([&b""[..], b"TOPIC_INFO null after"], 0)
        .unwrap();
    let reply = d.recv_multipart(0).unwrap();
    assert!(
        String::from_utf8_lossy(&reply[1]).contains("'after'"),
        "{reply:?}"
    );
}
