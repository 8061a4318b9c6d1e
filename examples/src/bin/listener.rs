//! Prints every message on `chatter`. Master: `ZEROSMQ_MASTER` or the default.
fn main() -> zerosmq::Result<()> {
    zerosmq_examples::listener(None, None, |text| println!("I heard: {text}"))
}
