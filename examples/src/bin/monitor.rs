//! `monitor [N]`: prints doubled readings and publishes STOP on `command` after N (default 20).
fn main() -> zerosmq::Result<()> {
    let n = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    zerosmq_examples::monitor(None, n, |r| {
        println!("sensor{} #{}: {}", r.sensor, r.seq, r.value)
    })?;
    println!("monitor: sent STOP");
    Ok(())
}
