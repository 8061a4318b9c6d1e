//! Lets the linker find memory.x; rebuilds when a node setting (README.md) changes.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    println!("cargo:rustc-link-search={dir}");
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=build.rs");
    for var in ["ZSMQ_MASTER", "ZSMQ_IP", "ZSMQ_GATEWAY", "ZSMQ_NODE_NAME"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
}
