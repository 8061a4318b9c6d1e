#![no_main]
//! Reply decoding (text and binary) for every kind of reply a node can expect.
use libfuzzer_sys::fuzz_target;
use zerosmq_core::control::{decode_reply, Encoding, ReplyKind};

const KINDS: [ReplyKind; 9] = [
    ReplyKind::Granted,
    ReplyKind::Done,
    ReplyKind::Topics,
    ReplyKind::Graph,
    ReplyKind::Nodes,
    ReplyKind::TopicInfo,
    ReplyKind::NodeInfo,
    ReplyKind::Alive,
    ReplyKind::Schema,
];

fuzz_target!(|data: &[u8]| {
    let Some((&k, body)) = data.split_first() else {
        return;
    };
    let kind = KINDS[usize::from(k) % KINDS.len()];
    if let Ok(reply) = decode_reply(kind, body) {
        // Whatever decodes can be encoded again (into a buffer large enough for any body).
        let mut buf = vec![0u8; body.len() * 2 + 64];
        let _ = reply.encode(Encoding::of(body), &mut buf);
    }
});
