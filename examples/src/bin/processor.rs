//! Republishes readings of sensor1 and sensor2 doubled on `doubled`, until STOP.
fn main() -> zerosmq::Result<()> {
    let n = zerosmq_examples::processor(None)?;
    println!("processor: STOP received after {n} readings");
    Ok(())
}
