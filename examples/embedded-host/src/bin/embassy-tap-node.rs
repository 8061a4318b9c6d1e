//! The async embedded node on a real embedded TCP stack: embassy-net (smoltcp) over the TAP
//! device `tap0`, talking to the real master next to a std node. Meant to run inside a network
//! namespace that has `tap0` at 192.168.69.100/24 (see tests/tests/embedded_embassy_tap.rs):
//!
//! ```text
//! ip netns exec NS embassy-tap-node
//! ```
//!
//! The master and the std node use the kernel's stack on 192.168.69.100; the embedded node is
//! 192.168.69.1 on smoltcp's side of the TAP device. Exits 0 when messages went both ways and
//! the embedded node showed up in the graph; 1 on failure, 2 on timeout.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::mpsc;
use std::time::Duration;

use embassy_executor::Spawner;
use embassy_net::tcp::client::{TcpClient, TcpClientState};
use embassy_net::{Config, Ipv4Cidr, StackResources, StaticConfigV4};
use embassy_net_tuntap::TunTapDevice;
use static_cell::StaticCell;
use zerosmq_embedded::asynch::Node;

const HOST: Ipv4Addr = Ipv4Addr::new(192, 168, 69, 100);
const MCU: Ipv4Addr = Ipv4Addr::new(192, 168, 69, 1);
const WAIT: Duration = Duration::from_secs(10);

#[embassy_executor::task]
async fn net_task(mut runner: embassy_net::Runner<'static, TunTapDevice>) -> ! {
    runner.run().await
}

fn fail(what: &str) -> ! {
    eprintln!("embassy-tap-node: FAILED: {what}");
    std::process::exit(1)
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    // A watchdog, so a lost packet never hangs CI.
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(60));
        eprintln!("embassy-tap-node: timed out");
        std::process::exit(2);
    });

    let master = zerosmq_master::Master::spawn(zerosmq_master::MasterConfig {
        bind: HOST.to_string(),
        port: 0,
        ..Default::default()
    })
    .unwrap_or_else(|e| fail(&format!("master: {e}")));
    let control = SocketAddr::new(HOST.into(), master.control_port());
    let endpoint = master.control_endpoint();

    // The std node runs on its own thread: its calls block, and this thread runs the executor.
    let (mcu_ready_tx, mcu_ready_rx) = mpsc::channel::<()>();
    let (host_done_tx, host_done_rx) = mpsc::channel::<Result<String, String>>();
    std::thread::spawn(move || {
        let result = (|| -> Result<String, String> {
            let node = zerosmq::Node::builder("host")
                .master(endpoint)
                .timeout(WAIT)
                .connect()
                .map_err(|e| e.to_string())?;
            let mut from_mcu = node.subscribe("from_mcu").map_err(|e| e.to_string())?;
            from_mcu.wait_ready(WAIT).map_err(|e| e.to_string())?;
            let mut to_mcu = node.advertise("to_mcu").map_err(|e| e.to_string())?;
            to_mcu.wait_ready(WAIT).map_err(|e| e.to_string())?;
            // The embedded subscriber said its path is live (ready probe): nothing is lost.
            mcu_ready_rx.recv_timeout(WAIT).map_err(|e| e.to_string())?;
            to_mcu.publish(b"hello mcu").map_err(|e| e.to_string())?;
            let msg = from_mcu
                .recv_timeout(WAIT)
                .map_err(|e| e.to_string())?
                .ok_or("no message from the embedded node")?;
            if msg.payload() != b"hello host" {
                return Err(format!("unexpected payload {:?}", msg.payload()));
            }
            node.graph().map_err(|e| e.to_string())
        })();
        let _ = host_done_tx.send(result);
    });

    let device = TunTapDevice::new("tap0").unwrap_or_else(|e| fail(&format!("tap0: {e}")));
    let config = Config::ipv4_static(StaticConfigV4 {
        address: Ipv4Cidr::new(MCU, 24),
        gateway: None,
        dns_servers: Default::default(),
    });
    static RESOURCES: StaticCell<StackResources<4>> = StaticCell::new();
    let (stack, runner) = embassy_net::new(
        device,
        config,
        RESOURCES.init(StackResources::new()),
        0x5eed,
    );
    spawner.spawn(net_task(runner).unwrap_or_else(|_| fail("spawn")));
    stack.wait_config_up().await;

    // Three sockets: a subscriber, a publisher and a control request at a time.
    static STATE: StaticCell<TcpClientState<3, 1024, 1024>> = StaticCell::new();
    let client = TcpClient::new(stack, STATE.init(TcpClientState::new()));
    let node = Node::new(&client, control, "mcu").unwrap_or_else(|_| fail("node name"));

    let mut sub_buf = [0u8; 256];
    let mut pub_buf = [0u8; 256];
    let mut subscriber = node
        .subscribe("to_mcu", &mut sub_buf)
        .await
        .unwrap_or_else(|e| fail(&format!("subscribe: {e}")));
    subscriber
        .wait_ready()
        .await
        .unwrap_or_else(|e| fail(&format!("subscriber ready: {e}")));
    let mut publisher = node
        .advertise("from_mcu", &mut pub_buf)
        .await
        .unwrap_or_else(|e| fail(&format!("advertise: {e}")));
    publisher
        .wait_ready()
        .await
        .unwrap_or_else(|e| fail(&format!("publisher ready: {e}")));
    let _ = mcu_ready_tx.send(());

    let got = subscriber
        .recv()
        .await
        .unwrap_or_else(|e| fail(&format!("recv: {e}")));
    if got != b"hello mcu" {
        fail(&format!("embedded node got {got:?}"));
    }
    publisher
        .publish(b"hello host")
        .await
        .unwrap_or_else(|e| fail(&format!("publish: {e}")));

    // Wait for the std side without blocking the executor (the stack must keep running).
    let graph = loop {
        match host_done_rx.try_recv() {
            Ok(Ok(graph)) => break graph,
            Ok(Err(e)) => fail(&format!("std node: {e}")),
            Err(_) => embassy_time::Timer::after_millis(10).await,
        }
    };
    let mut graph_buf = [0u8; 2048];
    let dot = node
        .graph(&mut graph_buf)
        .await
        .unwrap_or_else(|e| fail(&format!("graph: {e}")));
    if !graph.contains("\"mcu\"") || !dot.contains("\"mcu\"") {
        fail(&format!("mcu missing from the graph:\n{graph}"));
    }
    println!("embassy-tap-node: messages went both ways over embassy-net; graph:\n{dot}");
    let _ = master.shutdown();
    std::process::exit(0);
}
