//! A zerosmq node on an ESP32-C3: joins Wi-Fi, takes an address by DHCP, publishes the chip's
//! temperature on `esp32c3/temperature` at 10 Hz, logs what arrives on `esp32c3/command`, and
//! sends a heartbeat every second. Every failure (Wi-Fi lost, master restarted) is retried, so
//! the node comes back on its own. Settings at build time: see README.md.

#![no_std]
#![no_main]

use core::fmt::Write as _;
use core::net::SocketAddr;

use embassy_executor::Spawner;
use embassy_futures::join::join;
use embassy_futures::select::{select, Either};
use embassy_net::tcp::client::{TcpClient, TcpClientState};
use embassy_net::{Runner, Stack, StackResources};
use embassy_time::{Duration, Ticker, Timer};
use esp_backtrace as _;
use esp_hal::clock::CpuClock;
use esp_hal::rng::Rng;
use esp_hal::timer::timg::TimerGroup;
use esp_hal::tsens::{self, TemperatureSensor};
use esp_radio::wifi::sta::StationConfig;
use esp_radio::wifi::{
    AuthenticationMethodConfig, Config, ControllerConfig, Interface, WifiController,
};
use log::{info, warn};
use static_cell::StaticCell;
use zerosmq_embedded::asynch::Node;

esp_bootloader_esp_idf::esp_app_desc!();

const SSID: &str = env!(
    "WIFI_SSID",
    "set WIFI_SSID (and WIFI_PASSWORD) when building"
);
const PASSWORD: &str = env!("WIFI_PASSWORD", "set WIFI_PASSWORD (WPA2 personal)");
/// The master's control address, `IP:PORT` (no DNS).
const MASTER: &str = match option_env!("ZEROSMQ_MASTER") {
    Some(addr) => addr,
    None => "192.168.1.100:5555",
};
const NAME: &str = "esp32c3";
const READINGS: &str = "esp32c3/temperature";
const COMMANDS: &str = "esp32c3/command";

/// A publisher and a subscriber each hold a connection; the node's heartbeat and a reconnect's
/// grant request each briefly open a control connection beside them.
const SOCKETS: usize = 4;
type Client = TcpClient<'static, SOCKETS, 512, 512>;

#[esp_hal::main]
async fn main(spawner: Spawner) -> ! {
    esp_println::logger::init_logger_from_env();
    let peripherals = esp_hal::init(esp_hal::Config::default().with_cpu_clock(CpuClock::max()));
    // The Wi-Fi driver's heap.
    esp_alloc::heap_allocator!(size: 72 * 1024);
    let timg0 = TimerGroup::new(peripherals.TIMG0);
    esp_rtos::start(timg0.timer0, peripherals.FROM_CPU_INTR0);

    let auth = AuthenticationMethodConfig::Wpa2Personal(
        PASSWORD.try_into().expect("WIFI_PASSWORD too long"),
    );
    let station = StationConfig::default()
        .with_ssid(SSID.try_into().expect("WIFI_SSID too long"))
        .with_authentication(auth);
    let controller = WifiController::new(
        peripherals.WIFI,
        ControllerConfig::default().with_initial_config(Config::Station(station)),
    )
    .expect("Wi-Fi init");

    let rng = Rng::new();
    static RESOURCES: StaticCell<StackResources<{ SOCKETS + 2 }>> = StaticCell::new();
    let (stack, runner) = embassy_net::new(
        Interface::station(),
        embassy_net::Config::dhcpv4(Default::default()),
        RESOURCES.init(StackResources::new()),
        u64::from(rng.random()) << 32 | u64::from(rng.random()),
    );
    spawner.spawn(wifi_task(controller).expect("spawn"));
    spawner.spawn(net_task(runner).expect("spawn"));

    let master: SocketAddr = MASTER.parse().expect("ZEROSMQ_MASTER must be IP:PORT");
    let sensor =
        TemperatureSensor::new(peripherals.TSENS, tsens::Config::default()).expect("tsens");
    stack.wait_config_up().await;
    if let Some(config) = stack.config_v4() {
        info!("DHCP address {}, master {}", config.address, master);
    }

    static STATE: StaticCell<TcpClientState<SOCKETS, 512, 512>> = StaticCell::new();
    let client: Client = TcpClient::new(stack, STATE.init(TcpClientState::new()));
    let node = Node::new(&client, master, NAME)
        .expect("node name")
        // The node sends its own heartbeat every second, from the publisher's and the
        // subscriber's calls: no heartbeat task.
        .with_heartbeat(Duration::from_secs(1));
    join(publish(&node, stack, &sensor), listen(&node)).await;
    unreachable!()
}

/// Back-off after a failure; waits for the link and an address first (Wi-Fi lost).
async fn back_off(stack: Stack<'_>) {
    Timer::after(Duration::from_secs(1)).await;
    stack.wait_config_up().await;
}

async fn publish(node: &Node<&Client>, stack: Stack<'_>, sensor: &TemperatureSensor<'_>) {
    let mut buf = [0u8; 128];
    loop {
        match node.advertise(READINGS, &mut buf).await {
            Ok(mut publisher) => {
                let mut ticker = Ticker::every(Duration::from_millis(100));
                loop {
                    // Between readings, answer the master's PINGs.
                    if let Either::Second(e) = select(ticker.next(), publisher.serve()).await {
                        warn!("publisher: {e}");
                        back_off(stack).await;
                    }
                    let mut reading = heapless::String::<16>::new();
                    let _ = write!(reading, "{:.1}", sensor.get_temperature().to_celsius());
                    // `publish` reconnects with a fresh grant when the master restarted.
                    if let Err(e) = publisher.publish(reading.as_bytes()).await {
                        warn!("publish: {e}");
                        back_off(stack).await;
                    }
                }
            }
            Err(e) => warn!("advertise {READINGS}: {e}"),
        }
        back_off(stack).await;
    }
}

async fn listen(node: &Node<&Client>) {
    let mut buf = [0u8; 256];
    loop {
        match node.subscribe(COMMANDS, &mut buf).await {
            // `recv` resubscribes on its own after a lost connection.
            Ok(mut subscriber) => loop {
                match subscriber.recv().await {
                    Ok(cmd) => match core::str::from_utf8(cmd) {
                        Ok(text) => info!("command: {text}"),
                        Err(_) => info!("command: {cmd:02x?}"),
                    },
                    Err(e) => {
                        warn!("subscriber: {e}");
                        Timer::after(Duration::from_secs(1)).await;
                    }
                }
            },
            Err(e) => warn!("subscribe {COMMANDS}: {e}"),
        }
        Timer::after(Duration::from_secs(1)).await;
    }
}

#[embassy_executor::task]
async fn wifi_task(mut controller: WifiController<'static>) {
    loop {
        match controller.connect_async().await {
            Ok(_) => {
                info!("Wi-Fi connected to {SSID}");
                let _ = controller.wait_for_disconnect_async().await;
                warn!("Wi-Fi disconnected");
            }
            Err(e) => warn!("Wi-Fi connect: {e:?}"),
        }
        Timer::after(Duration::from_secs(3)).await;
    }
}

#[embassy_executor::task]
async fn net_task(mut runner: Runner<'static, Interface>) {
    runner.run().await
}
