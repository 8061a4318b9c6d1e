//! Typed topics against the real master binary: a std publisher declares its type's schema
//! (postcard-schema, derived), the master keeps it per topic, `topic info` and subscribers read
//! it, the CLI decodes payloads to JSON; bad schemas are refused with clear errors while the
//! master keeps serving.

// Only its CLI runner is used here (the master is the binary, not the in-process one).
#[allow(unused_imports)]
mod cli_support;

use std::process::Command;

use serde::{Deserialize, Serialize};
use zerosmq::{Error, ErrorCode, Schema};
use zerosmq_tests::{raw_control_at, raw_request, MasterProcess, WAIT};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Schema)]
#[postcard(crate = zerosmq::postcard_schema)]
struct Vec3 {
    x: f32,
    y: f32,
    z: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Schema)]
#[postcard(crate = zerosmq::postcard_schema)]
struct Imu {
    stamp_us: u64,
    accel: Vec3,
    gyro: Vec3,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Schema)]
#[postcard(crate = zerosmq::postcard_schema)]
struct Other {
    celsius: f64,
}

/// A type whose schema is over the limit: a struct of 40 long-named fields.
#[derive(Serialize, Schema)]
#[postcard(crate = zerosmq::postcard_schema)]
struct Huge {
    a_field_with_a_long_name_00: u8,
    a_field_with_a_long_name_01: u8,
    a_field_with_a_long_name_02: u8,
    a_field_with_a_long_name_03: u8,
    a_field_with_a_long_name_04: u8,
    a_field_with_a_long_name_05: u8,
    a_field_with_a_long_name_06: u8,
    a_field_with_a_long_name_07: u8,
    a_field_with_a_long_name_08: u8,
    a_field_with_a_long_name_09: u8,
    a_field_with_a_long_name_10: u8,
    a_field_with_a_long_name_11: u8,
    a_field_with_a_long_name_12: u8,
    a_field_with_a_long_name_13: u8,
    a_field_with_a_long_name_14: u8,
    a_field_with_a_long_name_15: u8,
    a_field_with_a_long_name_16: u8,
    a_field_with_a_long_name_17: u8,
    a_field_with_a_long_name_18: u8,
    a_field_with_a_long_name_19: u8,
}

fn node(master: &MasterProcess, name: &str) -> zerosmq::Node {
    zerosmq::Node::builder(name)
        .master(master.endpoint())
        .timeout(WAIT)
        .connect()
        .expect("node")
}

fn cli(master: &MasterProcess) -> Command {
    let mut cmd = Command::new(cli_support::zerosmq_bin());
    cmd.env_remove("ZEROSMQ_MASTER")
        .args(["--master", &master.endpoint(), "--timeout", "10"]);
    cmd
}

fn imu(i: u64) -> Imu {
    Imu {
        stamp_us: i,
        accel: Vec3 {
            x: i as f32 * 0.5,
            y: -1.0,
            z: 9.75,
        },
        gyro: Vec3 {
            x: 0.0,
            y: 0.25,
            z: 0.0,
        },
    }
}

#[test]
fn typed_publisher_declares_its_schema_and_subscribers_read_it() {
    let master = MasterProcess::start(&[]);
    let talker = node(&master, "imu_driver");
    let listener = node(&master, "listener");
    let mut subscriber = listener.subscribe("imu").unwrap();
    assert!(
        subscriber.schema().unwrap().is_none(),
        "untyped before a typed publisher"
    );

    let mut publisher = talker.advertise_typed::<Imu>("imu").unwrap();
    publisher.wait_ready(WAIT).unwrap();
    subscriber.wait_ready(WAIT).unwrap();
    let schema = subscriber.schema().unwrap().expect("typed now");
    assert_eq!(schema.name, "Imu");
    assert_eq!(
        schema.to_pseudocode(),
        "struct Imu { stamp_us: u64, accel: Vec3, gyro: Vec3 }"
    );
    assert_eq!(talker.topic_schema("imu").unwrap(), Some(schema.clone()));
    assert_eq!(talker.topic_info("imu").unwrap().schema, Some(schema));

    publisher.publish_value(&imu(1)).unwrap();
    let msg = subscriber.recv_timeout(WAIT).unwrap().expect("message");
    assert_eq!(msg.decode::<Imu>().unwrap(), imu(1));

    // The same type again from another node is granted; an untyped publisher too (original
    // nodes cannot declare one), and the topic keeps its schema.
    let second = node(&master, "imu_driver2");
    let _same = second.advertise_typed::<Imu>("imu").unwrap();
    let _untyped = second.advertise("imu").unwrap();
    assert_eq!(
        listener.topic_schema("imu").unwrap().map(|s| s.name),
        Some("Imu".to_owned())
    );
    // An untyped topic stays untyped.
    let _plain = second.advertise("plain").unwrap();
    assert_eq!(listener.topic_schema("plain").unwrap(), None);
    assert_eq!(listener.topic_info("plain").unwrap().schema, None);

    let out = cli(&master)
        .args(["topic", "info", "imu"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout
            .contains("Type: Imu\nSchema: struct Imu { stamp_us: u64, accel: Vec3, gyro: Vec3 }\n"),
        "{stdout}"
    );
}

#[test]
fn bad_schemas_are_refused_clearly_and_the_master_keeps_serving() {
    let master = MasterProcess::start(&[]);
    let first = node(&master, "first");
    let _p = first.advertise_typed::<Imu>("imu").unwrap();

    // Another type on the same topic.
    let other = node(&master, "other");
    match other.advertise_typed::<Other>("imu") {
        Err(Error::Refused { code, detail }) => {
            assert_eq!(code, ErrorCode::SchemaMismatch);
            assert_eq!(
                detail,
                "topic 'imu' carries struct Imu { stamp_us: u64, accel: Vec3, gyro: Vec3 }, \
                 node 'other' declares struct Other { celsius: f64 }"
            );
        }
        r => panic!("expected a schema mismatch, got {r:?}"),
    }
    assert!(other.topic_info("imu").unwrap().publishers == ["first"]);

    // A schema over the limit is refused before the master is asked.
    match other.advertise_typed::<Huge>("huge") {
        Err(e @ Error::SchemaTooLarge { max: 512, .. }) => {
            println!("oversized schema: {e}");
        }
        r => panic!("expected SchemaTooLarge, got {r:?}"),
    }

    // Raw requests: garbage schema bytes, a schema over the limit, trailing bytes.
    let ctx = zmq::Context::new();
    let req = raw_control_at(&ctx, &master.endpoint());
    let typed =
        |schema: &[u8], len: &[u8]| [&[0xff, 1, 10, 1, b'n', 3][..], b"raw", len, schema].concat();
    let cases: [(&str, Vec<u8>, &str); 3] = [
        (
            "garbage schema",
            typed(&[0xff; 4], &[4]),
            "ERROR invalid-schema: topic 'raw': schema is not a postcard-schema type",
        ),
        (
            "600-byte schema",
            typed(&[0; 600], &[0xd8, 0x04]),
            "ERROR too-large: schema is 600 bytes, the limit is 512",
        ),
        (
            "bytes after the type",
            typed(&[1, b'B', 0, 9], &[4]),
            "ERROR invalid-schema: topic 'raw': schema has 1 bytes after the type",
        ),
    ];
    for (what, bytes, want) in cases {
        // Asked in binary, answered in binary: read the error through core's decoder.
        let reply = raw_request(&req, &bytes);
        let text = match zerosmq_core::decode_reply(zerosmq_core::ReplyKind::Granted, &reply) {
            Ok(zerosmq_core::ControlReply::Error(e)) => format!("ERROR {e}"),
            r => panic!("{what}: expected an error, got {r:?}"),
        };
        assert!(text.starts_with(want), "{what}: {text}");
        println!("{what}: {text}");
    }
    assert!(first.topic_schema("raw").is_err(), "no topic opened");

    // Still serving: the typed topic works for a new subscriber.
    let late = node(&master, "late");
    let mut sub = late.subscribe("imu").unwrap();
    sub.wait_ready(WAIT).unwrap();
    assert_eq!(sub.schema().unwrap().map(|s| s.name), Some("Imu".into()));
}

#[test]
fn cli_echo_prints_typed_payloads_as_json_and_plot_plots_a_field() {
    let master = MasterProcess::start(&[]);
    let talker = node(&master, "imu_driver");
    let mut publisher = talker.advertise_typed::<Imu>("imu").unwrap();
    publisher.wait_ready(WAIT).unwrap();

    let mut echo = cli_support::spawn(cli(&master).args(["topic", "echo", "imu", "-n", "2"]));
    echo.wait_stderr("subscribed to 'imu'");
    publisher.publish_value(&imu(1)).unwrap();
    // Not a valid Imu: shown as hex, with the reason on stderr.
    publisher.publish(&[1, 2]).unwrap();
    let (status, out, err) = echo.finish();
    assert!(status.success(), "{err:#?}");
    assert_eq!(
        out,
        [
            r#"{"accel":{"x":0.5,"y":-1.0,"z":9.75},"gyro":{"x":0.0,"y":0.25,"z":0.0},"stamp_us":1}"#,
            "0x0102"
        ],
        "{err:#?}"
    );
    assert!(
        err.iter()
            .any(|l| l.contains("payload does not decode as Imu")),
        "{err:#?}"
    );

    let png = cli_support::temp_dir("typed_plot").join("accel.png");
    let mut plot = cli_support::spawn(
        cli(&master)
            .args([
                "plot",
                "imu.accel.x",
                "imu.gyro.y",
                "--duration",
                "2",
                "--png",
            ])
            .arg(&png),
    );
    plot.wait_stderr("subscribed to 'imu'");
    plot.wait_stderr("subscribed to 'imu'");
    for i in 0..10 {
        publisher.publish_value(&imu(i)).unwrap();
    }
    let (status, _, err) = plot.finish();
    assert!(status.success(), "{err:#?}");
    assert!(
        err.iter()
            .any(|l| l.contains("20 point(s) plotted; 0 non-numeric payload(s) skipped")),
        "{err:#?}"
    );
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));

    // A field path on an untyped topic is refused with a reason.
    let _plain = talker.advertise("plain").unwrap();
    let out = cli(&master)
        .args([
            "plot",
            "plain.x",
            "--duration",
            "1",
            "--png",
            "/tmp/never.png",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("'plain.x': topic 'plain' is not typed, so it has no field 'x'"),
        "{err}"
    );
}

/// Reads an MCAP file with the MCAP project's Python reader and prints what a viewer sees of its
/// typed channel: schema name and encoding, the JSON Schema's fields, the channel's message
/// encoding, and the first message decoded as JSON.
const MCAP_READER: &str = r#"
import json, sys
from mcap.reader import make_reader
with open(sys.argv[1], "rb") as f:
    reader = make_reader(f)
    summary = reader.get_summary()
    for schema in summary.schemas.values():
        doc = json.loads(schema.data)
        print("schema", schema.name, schema.encoding, ",".join(sorted(doc["properties"])),
              doc["properties"]["accel"]["properties"]["x"]["type"])
    for channel in summary.channels.values():
        print("channel", channel.topic, channel.message_encoding,
              summary.schemas[channel.schema_id].name if channel.schema_id else "-")
    for schema, channel, message in reader.iter_messages():
        if channel.message_encoding == "json":
            value = json.loads(message.data)
            print("message", channel.topic, value["stamp_us"], value["accel"]["x"])
"#;

#[test]
fn typed_topics_are_recorded_with_a_json_schema_foxglove_decodes() {
    let master = MasterProcess::start(&[]);
    let talker = node(&master, "imu_driver");
    let mut publisher = talker.advertise_typed::<Imu>("imu").unwrap();
    publisher.wait_ready(WAIT).unwrap();
    let file = cli_support::temp_dir("typed_record").join("imu.mcap");
    let mut rec = cli_support::spawn(
        cli(&master)
            .args(["record", "imu", "-n", "3", "-o"])
            .arg(&file),
    );
    rec.wait_stderr("'imu' is typed (Imu): stored as JSON");
    publisher.publish_value(&imu(1)).unwrap();
    // Not an Imu: kept unchanged on the topic's plain channel.
    publisher.publish(b"junk").unwrap();
    publisher.publish_value(&imu(2)).unwrap();
    let (status, _, err) = rec.finish();
    assert!(status.success(), "{err:#?}");

    let out = Command::new("python3")
        .arg("-c")
        .arg(MCAP_READER)
        .arg(&file)
        .output()
        .expect("python3 runs (scripts/test.sh installs the mcap package)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{stdout}");
    let mut lines: Vec<&str> = stdout.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "channel imu json Imu",
            "channel imu zerosmq -",
            "message imu 1 0.5",
            "message imu 2 1.0",
            "schema Imu jsonschema accel,gyro,stamp_us number",
        ]
    );

    // Read back (as replay does): the JSON turns into the published postcard bytes again.
    let recording = zerosmq_recording::read_recording(&file).unwrap();
    assert!(recording.damage.is_none(), "{:?}", recording.damage);
    let mut payloads: Vec<Vec<u8>> = recording.messages.into_iter().map(|m| m.payload).collect();
    payloads.sort();
    let mut want = vec![
        postcard::to_stdvec(&imu(1)).unwrap(),
        postcard::to_stdvec(&imu(2)).unwrap(),
        b"junk".to_vec(),
    ];
    want.sort();
    assert_eq!(payloads, want);
}

#[test]
fn foxglove_sees_a_typed_topic_with_its_json_schema_and_decoded_payloads() {
    use serde_json::{json, Value};
    use std::sync::atomic::{AtomicBool, Ordering};
    use zerosmq_tests::foxglove::{endpoint_port, FoxgloveClient};

    let master = MasterProcess::start(&["--foxglove", "127.0.0.1:0"]);
    let port = endpoint_port(&master);
    let talker = node(&master, "imu_driver");
    let mut publisher = talker.advertise_typed::<Imu>("imu").unwrap();
    publisher.wait_ready(WAIT).unwrap();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let streaming = {
        let stop = stop.clone();
        // A sensor's rate: the client subscribes whenever it is ready and gets what follows.
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                publisher.publish_value(&imu(i)).unwrap();
                i += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        })
    };

    let mut fox = FoxgloveClient::connect(port);
    fox.send(json!({"cmd": "subscribe", "topic": "imu"}));
    let ad = fox.wait_for("the typed channel", |e| {
        e["ev"] == "advertise" && e["topic"] == "imu"
    });
    assert_eq!(ad["encoding"], "json", "{ad}");
    assert_eq!(ad["schemaName"], "Imu", "{ad}");
    assert_eq!(ad["schemaEncoding"], "jsonschema", "{ad}");
    let schema: Value = serde_json::from_str(ad["schema"].as_str().unwrap()).unwrap();
    assert_eq!(
        schema["properties"]["accel"]["properties"]["x"]["type"], "number",
        "{schema}"
    );
    let m = fox.wait_for("a decoded Imu", |e| e["ev"] == "message");
    let stamp = m["data"]["stamp_us"].as_u64().expect("stamp_us a number");
    // JavaScript prints 78.0 as 78: compared as numbers.
    assert_eq!(
        m["data"]["accel"]["x"].as_f64(),
        Some(stamp as f64 * 0.5),
        "{m}"
    );
    assert_eq!(m["data"]["accel"]["z"].as_f64(), Some(9.75), "{m}");
    stop.store(true, Ordering::Relaxed);
    streaming.join().unwrap();
}

/// The embedded node declares a type the same way (`advertise_typed`, feature `typed`): the
/// master keeps the schema the std client would have sent, a std subscriber decodes the
/// embedded node's postcard payloads, and another type on the topic is refused.
#[test]
fn an_embedded_typed_publisher_declares_the_same_schema() {
    let master = MasterProcess::start(&[]);
    let control: std::net::SocketAddr = format!("127.0.0.1:{}", master.port).parse().unwrap();
    let stack = zerosmq_embedded::StdConnect {
        read_timeout: Some(WAIT),
    };
    let mcu = zerosmq_embedded::Node::new(&stack, control, "imu_mcu").unwrap();
    let mut buf = [0u8; 256];
    let mut publisher = mcu.advertise_typed::<Imu>("mcu_imu", &mut buf).unwrap();
    publisher.wait_ready().unwrap();

    let host = node(&master, "host");
    let reference = host.advertise_typed::<Imu>("std_imu").unwrap();
    let declared = host.topic_schema("mcu_imu").unwrap().expect("typed");
    assert_eq!(
        Some(declared.clone()),
        host.topic_schema("std_imu").unwrap()
    );
    assert_eq!(
        declared.to_pseudocode(),
        "struct Imu { stamp_us: u64, accel: Vec3, gyro: Vec3 }"
    );
    drop(reference);

    let mut subscriber = host.subscribe("mcu_imu").unwrap();
    subscriber.wait_ready(WAIT).unwrap();
    let mut payload = [0u8; 64];
    let encoded = postcard::to_slice(&imu(7), &mut payload).unwrap();
    publisher.publish(encoded).unwrap();
    let msg = subscriber.recv_timeout(WAIT).unwrap().expect("message");
    assert_eq!(msg.decode::<Imu>().unwrap(), imu(7));

    let other = zerosmq_embedded::Node::new(&stack, control, "other_mcu").unwrap();
    let e = other
        .advertise_typed::<Other>("mcu_imu", &mut [0u8; 256])
        .unwrap_err();
    assert!(
        matches!(
            e,
            zerosmq_embedded::Error::Refused(zerosmq_core::ErrorCode::SchemaMismatch)
        ),
        "{e:?}"
    );
}
