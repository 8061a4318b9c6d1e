//! Lets the linker find memory.x; rebuilds when a node setting (README.md) changes.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    println!("cargo:rustc-link-search={dir}");
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=build.rs");
    for var in [
        "ZEROSMQ_MASTER",
        "ZEROSMQ_IP",
        "ZEROSMQ_GATEWAY",
        "ZEROSMQ_NODE_NAME",
        "ZEROSMQ_PUB_TOPIC",
        "ZEROSMQ_SUB_TOPIC",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
}
