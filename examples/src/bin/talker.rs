//! Publishes `hello world N` on `chatter` once a second. Master: `ZEROSMQ_MASTER` or the default.
fn main() -> zerosmq::Result<()> {
    zerosmq_examples::talker(None, std::time::Duration::from_secs(1), None)
}
