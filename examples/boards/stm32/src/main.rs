//! A zerosmq node on a NUCLEO-F767ZI: brings up Ethernet (the on-board LAN8742 PHY over RMII),
//! takes an address by DHCP, publishes the chip's temperature on `stm32/temperature` at 10 Hz,
//! logs what arrives on `stm32/command`, and sends a heartbeat every second. Every failure (cable
//! pulled, master restarted) is retried, so the node comes back on its own. The master's address
//! is a build-time setting: see README.md.

#![no_std]
#![no_main]

use core::fmt::Write as _;
use core::net::SocketAddr;

use defmt::{info, warn};
use embassy_executor::Spawner;
use embassy_futures::join::join;
use embassy_futures::select::{select, Either};
use embassy_net::tcp::client::{TcpClient, TcpClientState};
use embassy_net::{Runner, Stack, StackResources};
use embassy_stm32::adc::{Adc, SampleTime, Temperature};
use embassy_stm32::eth::{Ethernet, GenericPhy, PacketQueue, Sma};
use embassy_stm32::peripherals::{ADC1, ETH, ETH_SMA};
use embassy_stm32::rng::Rng;
use embassy_stm32::time::Hertz;
use embassy_stm32::{bind_interrupts, eth, peripherals, rng, Config};
use embassy_time::{Duration, Ticker, Timer};
use static_cell::StaticCell;
use zerosmq_embedded::asynch::Node;
use {defmt_rtt as _, panic_probe as _};

/// The master's control address, `IP:PORT` (no DNS).
const MASTER: &str = match option_env!("ZEROSMQ_MASTER") {
    Some(addr) => addr,
    None => "192.168.1.100:5555",
};
const NAME: &str = "stm32";
const READINGS: &str = "stm32/temperature";
const COMMANDS: &str = "stm32/command";

/// A publisher and a subscriber each hold a connection; the node's heartbeat and a reconnect's
/// grant request each briefly open a control connection beside them.
const SOCKETS: usize = 4;
type Client = TcpClient<'static, SOCKETS, 512, 512>;
type Device = Ethernet<'static, ETH, GenericPhy<Sma<'static, ETH_SMA>>>;

bind_interrupts!(struct Irqs {
    ETH => eth::InterruptHandler;
    RNG => rng::InterruptHandler<peripherals::RNG>;
});

#[embassy_executor::main]
async fn main(spawner: Spawner) -> ! {
    let p = embassy_stm32::init(clocks());
    info!("zerosmq node {} starting, master {}", NAME, MASTER);

    let mut rng = Rng::new(p.RNG, Irqs);
    let seed = rng.next_u64();
    // A locally administered MAC from the chip's unique ID, so two boards never clash.
    let uid = embassy_stm32::uid::uid();
    let mac = [0x02, uid[0], uid[2], uid[4], uid[6], uid[8]];

    static PACKETS: StaticCell<PacketQueue<4, 4>> = StaticCell::new();
    // The Nucleo's RMII wiring (UM1974): REF_CLK PA1, MDIO PA2, MDC PC1, CRS_DV PA7, RXD0 PC4,
    // RXD1 PC5, TX_EN PG11, TXD0 PG13, TXD1 PB13.
    let device: Device = Ethernet::new(
        PACKETS.init(PacketQueue::new()),
        p.ETH,
        Irqs,
        p.PA1,
        p.PA7,
        p.PC4,
        p.PC5,
        p.PG13,
        p.PB13,
        p.PG11,
        mac,
        p.ETH_SMA,
        p.PA2,
        p.PC1,
    );

    static RESOURCES: StaticCell<StackResources<{ SOCKETS + 2 }>> = StaticCell::new();
    let (stack, runner) = embassy_net::new(
        device,
        embassy_net::Config::dhcpv4(Default::default()),
        RESOURCES.init(StackResources::new()),
        seed,
    );
    spawner.spawn(net_task(runner).expect("spawn"));

    let master: SocketAddr = MASTER.parse().expect("ZEROSMQ_MASTER must be IP:PORT");
    let mut adc = Adc::new(p.ADC1);
    let mut sensor = adc.enable_temperature();
    stack.wait_config_up().await;
    if let Some(config) = stack.config_v4() {
        info!("DHCP address {}, master {}", config.address, MASTER);
    }

    static STATE: StaticCell<TcpClientState<SOCKETS, 512, 512>> = StaticCell::new();
    let client: Client = TcpClient::new(stack, STATE.init(TcpClientState::new()));
    let node = Node::new(&client, master, NAME)
        .expect("node name")
        // The node sends its own heartbeat every second, from the publisher's and the
        // subscriber's calls: no heartbeat task.
        .with_heartbeat(Duration::from_secs(1))
        .with_probe_seed(rng.next_u64());
    join(publish(&node, stack, &mut adc, &mut sensor), listen(&node)).await;
    unreachable!()
}

/// 216 MHz from the ST-LINK's 8 MHz clock (HSE bypass), 48 MHz for the RNG.
fn clocks() -> Config {
    use embassy_stm32::rcc::{
        AHBPrescaler, APBPrescaler, Hse, HseMode, Pll, PllMul, PllPDiv, PllPreDiv, PllQDiv,
        PllSource, Sysclk,
    };
    let mut config = Config::default();
    config.rcc.hse = Some(Hse {
        freq: Hertz(8_000_000),
        mode: HseMode::Bypass,
    });
    config.rcc.pll_src = PllSource::HSE;
    config.rcc.pll = Some(Pll {
        prediv: PllPreDiv::DIV4,
        mul: PllMul::MUL216,
        divp: Some(PllPDiv::DIV2),
        divq: Some(PllQDiv::DIV9),
        divr: None,
    });
    config.rcc.ahb_pre = AHBPrescaler::DIV1;
    config.rcc.apb1_pre = APBPrescaler::DIV4;
    config.rcc.apb2_pre = APBPrescaler::DIV2;
    config.rcc.sys = Sysclk::PLL1_P;
    config
}

/// The die temperature in tenths of a degree Celsius, from the datasheet's typical figures
/// (0.76 V at 25 °C, 2.5 mV/°C, VDDA = 3.3 V): good to a few degrees, enough to see it move.
fn read_decidegrees(adc: &mut Adc<'_, ADC1>, sensor: &mut Temperature) -> i32 {
    // The sensor needs 10 µs of sampling; 480 ADC cycles at 27 MHz are 17.8 µs.
    let raw = i32::from(adc.blocking_read(sensor, SampleTime::CYCLES480));
    let millivolts = raw * 3300 / 4095;
    (millivolts - 760) * 4 + 250
}

/// Back-off after a failure; waits for the link and an address first (cable pulled).
async fn back_off(stack: Stack<'_>) {
    Timer::after(Duration::from_secs(1)).await;
    stack.wait_config_up().await;
}

async fn publish(
    node: &Node<&Client>,
    stack: Stack<'_>,
    adc: &mut Adc<'_, ADC1>,
    sensor: &mut Temperature,
) {
    let mut buf = [0u8; 128];
    loop {
        match node.advertise(READINGS, &mut buf).await {
            Ok(mut publisher) => {
                let mut ticker = Ticker::every(Duration::from_millis(100));
                loop {
                    // Between readings, answer the master's PINGs.
                    if let Either::Second(e) = select(ticker.next(), publisher.serve()).await {
                        warn!("publisher: {}", e);
                        back_off(stack).await;
                    }
                    let t = read_decidegrees(adc, sensor);
                    let mut reading = heapless::String::<16>::new();
                    let _ = write!(reading, "{}.{}", t / 10, (t % 10).abs());
                    // `publish` reconnects with a fresh grant when the master restarted.
                    if let Err(e) = publisher.publish(reading.as_bytes()).await {
                        warn!("publish: {}", e);
                        back_off(stack).await;
                    }
                }
            }
            Err(e) => warn!("advertise {}: {}", READINGS, e),
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
                        Ok(text) => info!("command: {}", text),
                        Err(_) => info!("command: {=[u8]:02x}", cmd),
                    },
                    Err(e) => {
                        warn!("subscriber: {}", e);
                        Timer::after(Duration::from_secs(1)).await;
                    }
                }
            },
            Err(e) => warn!("subscribe {}: {}", COMMANDS, e),
        }
        Timer::after(Duration::from_secs(1)).await;
    }
}

#[embassy_executor::task]
async fn net_task(mut runner: Runner<'static, Device>) -> ! {
    runner.run().await
}
