//! `sensor ID`: publishes readings on `sensorID` every 100 ms until STOP arrives on `command`.
fn main() -> zerosmq::Result<()> {
    let id = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    let sent = zerosmq_examples::sensor(None, id, std::time::Duration::from_millis(100))?;
    println!("sensor{id}: STOP received after {sent} readings");
    Ok(())
}
