use super::*;
use crate::limits::CONTROL_REQUEST_BUF_LEN;

fn node(s: &str) -> NodeName {
    NodeName::new(s).unwrap()
}
fn topic(s: &str) -> Topic {
    Topic::new(s).unwrap()
}

fn all_requests() -> [ControlRequest; 11] {
    let n = || node("pub1.py");
    let t = || topic("temperature");
    [
        ControlRequest::Publish {
            node: n(),
            topic: t(),
        },
        ControlRequest::Subscribe {
            node: n(),
            topic: t(),
        },
        ControlRequest::StopPublish {
            node: n(),
            topic: t(),
        },
        ControlRequest::StopSubscribe {
            node: n(),
            topic: t(),
        },
        ControlRequest::ListTopics { node: Some(n()) },
        ControlRequest::ListTopics { node: None },
        ControlRequest::Graph,
        ControlRequest::ListNodes,
        ControlRequest::TopicInfo { topic: t() },
        ControlRequest::NodeInfo { node: n() },
        ControlRequest::Heartbeat {
            node: n(),
            session: 0x00c0_ffee_0000_0001,
        },
    ]
}

#[test]
fn text_requests_are_the_originals_bytes() {
    let expected: [&[u8]; 11] = [
        b"REQUEST_PUB pub1.py temperature",
        b"REQUEST_SUB pub1.py temperature",
        b"REQUEST_STOP_PUB pub1.py temperature",
        b"REQUEST_STOP_SUB pub1.py temperature",
        b"LIST_ALL_TOPICS pub1.py null",
        b"LIST_ALL_TOPICS null null",
        b"REQUEST_MAP null null",
        b"LIST_NODES null null",
        b"TOPIC_INFO null temperature",
        b"NODE_INFO pub1.py null",
        b"HEARTBEAT pub1.py 00c0ffee00000001",
    ];
    for (req, bytes) in all_requests().iter().zip(expected) {
        let mut buf = [0u8; CONTROL_REQUEST_BUF_LEN];
        assert_eq!(req.encode(Encoding::Text, &mut buf).unwrap(), bytes);
        assert_eq!(decode_request(bytes).as_ref(), Ok(req));
    }
}

#[test]
fn binary_requests_round_trip_with_marker_and_version() {
    for req in all_requests() {
        let mut buf = [0u8; CONTROL_REQUEST_BUF_LEN];
        let bytes = req.encode(Encoding::Binary, &mut buf).unwrap();
        assert_eq!(&bytes[..2], &[BINARY_MARKER, 1]);
        assert_eq!(decode_request(bytes), Ok(req));
    }
    let mut buf = [0u8; 64];
    let publish = ControlRequest::Publish {
        node: node("n"),
        topic: topic("t"),
    };
    assert_eq!(
        publish.encode(Encoding::Binary, &mut buf).unwrap(),
        &[0xff, 1, 0, 1, b'n', 1, b't']
    );
}

#[test]
fn longest_request_fits_the_request_buffer() {
    let req = ControlRequest::StopSubscribe {
        node: node(&"n".repeat(64)),
        topic: topic(&"t".repeat(64)),
    };
    for enc in [Encoding::Text, Encoding::Binary] {
        let mut buf = [0u8; CONTROL_REQUEST_BUF_LEN];
        assert!(req.encode(enc, &mut buf).is_ok());
    }
}

#[test]
fn bad_text_requests_are_errors_with_reasons() {
    let cases: [(&[u8], ErrorCode); 12] = [
        (b"HEARTBEAT n 12345678901234567", ErrorCode::BadRequest),
        (b"HEARTBEAT n -1", ErrorCode::BadRequest),
        (b"", ErrorCode::BadRequest),
        (b"REQUEST_PUB a", ErrorCode::BadRequest),
        (b"REQUEST_PUB a b c", ErrorCode::BadRequest),
        (b"REQUEST_PUB  a b", ErrorCode::BadRequest),
        (b"HELLO a b", ErrorCode::UnknownCommand),
        (b"REQUEST_PUB a b\xff", ErrorCode::BadRequest),
        (b"REQUEST_PUB a,x b", ErrorCode::InvalidName),
        (b"REQUEST_SUB a \tb", ErrorCode::InvalidName),
        (b"\xff\x02\x00", ErrorCode::UnsupportedVersion),
        (b"\xff\x01\x00\x01", ErrorCode::BadRequest),
    ];
    for (bytes, code) in cases {
        let err = decode_request(bytes).unwrap_err();
        assert_eq!(err.code(), code, "{bytes:?}: {err}");
    }
    let long = [b'A'; 600];
    assert_eq!(
        decode_request(&long),
        Err(DecodeError::TooLong { len: 600, max: 512 })
    );
    let err = decode_request(b"HELLO a b").unwrap_err();
    extern crate std;
    use std::string::ToString;
    assert_eq!(err.to_string(), "unknown command 'HELLO'");
    let topic_1000 = [b"REQUEST_PUB a ".as_slice(), &[b't'; 400]].concat();
    assert_eq!(
        decode_request(&topic_1000).unwrap_err().to_string(),
        "invalid topic name: name is 400 bytes long, the limit is 64"
    );
}

#[test]
fn replies_round_trip_in_both_encodings() {
    let replies = [
        (ReplyKind::Granted, ControlReply::Granted { port: 40123 }, &b"REQUEST GRANT 40123"[..]),
        (ReplyKind::Done, ControlReply::Done, b"REQUEST GRANT"),
        (ReplyKind::Topics, ControlReply::Topics("a,b"), b"a,b"),
        (ReplyKind::Topics, ControlReply::Topics(""), b""),
        (ReplyKind::Graph, ControlReply::Graph("digraph G {}"), b"digraph G {}"),
        (ReplyKind::Nodes, ControlReply::Nodes("n1,n2"), b"n1,n2"),
        (
            ReplyKind::TopicInfo,
            ControlReply::TopicInfo(TopicInfo {
                topic: "t",
                publish_port: 1,
                subscribe_port: 2,
                publishers: "a,b",
                subscribers: "",
                messages: 3,
                bytes: 4,
                overflows: 5,
                refused: 6,
                idle_ms: None,
                schema: &[],
            }),
            b"TOPIC_INFO topic=t publish_port=1 subscribe_port=2 messages=3 bytes=4 overflows=5 refused=6 idle_ms= publishers=a,b subscribers=",
        ),
        (
            ReplyKind::NodeInfo,
            ControlReply::NodeInfo(NodeInfo { node: "n", publishes: "", subscribes: "x" }),
            b"NODE_INFO node=n publishes= subscribes=x",
        ),
        (ReplyKind::Alive, ControlReply::Alive { epoch: 0xabc }, b"ALIVE 0000000000000abc"),
        (
            ReplyKind::Granted,
            ControlReply::Error(ErrorReply { code: ErrorCode::UnknownCommand, detail: "no: such" }),
            b"ERROR unknown-command: no: such",
        ),
    ];
    for (kind, reply, text) in replies {
        let mut buf = [0u8; 256];
        assert_eq!(reply.encode(Encoding::Text, &mut buf).unwrap(), text);
        assert_eq!(decode_reply(kind, text), Ok(reply.clone()));
        let bin = reply.encode(Encoding::Binary, &mut buf).unwrap();
        assert_eq!(bin[0], BINARY_MARKER);
        assert_eq!(decode_reply(kind, bin), Ok(reply.clone()));
    }
    let mut small = [0u8; 5];
    assert_eq!(
        ControlReply::Done.encode(Encoding::Text, &mut small),
        Err(ControlEncodeError::BufferTooSmall)
    );
    assert_eq!(
        decode_reply(ReplyKind::Granted, b"REQUEST GRANT x"),
        Err(DecodeError::UnexpectedReply)
    );
    assert_eq!(
        decode_reply(ReplyKind::Done, b"REQUEST GRANT 1"),
        Err(DecodeError::UnexpectedReply)
    );
}

#[test]
fn typed_requests_are_binary_only_with_the_schema_as_bytes() {
    extern crate std;
    use crate::limits::{MAX_SCHEMA_LEN, TYPED_REQUEST_BUF_LEN};
    use std::string::ToString;
    let typed = ControlRequest::PublishTyped {
        node: node("n"),
        topic: topic("t"),
        schema: SchemaBytes::from_slice(&[7, 8, 9]).unwrap(),
    };
    let mut buf = [0u8; TYPED_REQUEST_BUF_LEN];
    // Variant 10 after the ten untyped requests, whose indices stay as they were.
    assert_eq!(
        typed.encode(Encoding::Binary, &mut buf).unwrap(),
        &[0xff, 1, 10, 1, b'n', 1, b't', 3, 7, 8, 9]
    );
    assert_eq!(
        typed.encode(Encoding::Text, &mut buf),
        Err(ControlEncodeError::BinaryOnly)
    );
    let ask = ControlRequest::TopicSchema { topic: topic("t") };
    assert_eq!(
        ask.encode(Encoding::Binary, &mut buf).unwrap(),
        &[0xff, 1, 11, 1, b't']
    );
    assert_eq!(ask.reply_kind(), ReplyKind::Schema);

    // The longest typed request fits its buffer and decodes.
    let longest = ControlRequest::PublishTyped {
        node: node(&"n".repeat(64)),
        topic: topic(&"t".repeat(64)),
        schema: SchemaBytes::from_slice(&[0xaa; MAX_SCHEMA_LEN]).unwrap(),
    };
    let bytes = longest.encode(Encoding::Binary, &mut buf).unwrap();
    assert_eq!(decode_request(bytes), Ok(longest));

    // One byte over the schema limit: refused naming the schema, short or long names alike.
    for name_len in [1, 64] {
        let head = [
            &[0xff, 1, 10, name_len as u8][..],
            &"n".repeat(name_len).into_bytes(),
            &[name_len as u8],
            &"t".repeat(name_len).into_bytes(),
            &[0x81, 0x04], // 513
        ]
        .concat();
        let over = [head, std::vec![0u8; MAX_SCHEMA_LEN + 1]].concat();
        let err = decode_request(&over).unwrap_err();
        assert_eq!(
            err,
            DecodeError::SchemaTooLong {
                len: MAX_SCHEMA_LEN + 1,
                max: MAX_SCHEMA_LEN
            },
            "names of {name_len}"
        );
        assert_eq!(err.code(), ErrorCode::TooLarge);
        assert_eq!(err.to_string(), "schema is 513 bytes, the limit is 512");
    }
}

#[test]
fn schema_replies_and_topic_info_carry_bytes_in_binary() {
    let mut buf = [0u8; 128];
    let reply = ControlReply::Schema(&[1, 2, 3]);
    let bin = reply.encode(Encoding::Binary, &mut buf).unwrap();
    assert_eq!(bin, &[0xff, 1, 9, 3, 1, 2, 3]);
    assert_eq!(decode_reply(ReplyKind::Schema, bin), Ok(reply.clone()));
    assert_eq!(
        reply.encode(Encoding::Text, &mut buf),
        Err(ControlEncodeError::BinaryOnly)
    );
    let info = ControlReply::TopicInfo(TopicInfo {
        topic: "t",
        publish_port: 1,
        subscribe_port: 2,
        publishers: "",
        subscribers: "",
        messages: 0,
        bytes: 0,
        overflows: 0,
        refused: 0,
        idle_ms: Some(1),
        schema: &[5, 6],
    });
    let bin = info.encode(Encoding::Binary, &mut buf).unwrap();
    assert_eq!(decode_reply(ReplyKind::TopicInfo, bin), Ok(info));
    for code in [ErrorCode::SchemaMismatch, ErrorCode::InvalidSchema] {
        assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
    }
}
