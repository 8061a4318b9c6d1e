//! A fault-injecting TCP proxy on loopback, our own (as smoltcp's fault injector): forwards
//! connections from a listen address to a target, and on command resets every connection (RST,
//! mid-frame if data is flowing) or stops forwarding while keeping the sockets open (half-open
//! TCP as the peers see it).

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PASS: u8 = 0;
const BLACKHOLE: u8 = 1;

#[derive(Default)]
struct Shared {
    mode: AtomicU8,
    stop: AtomicBool,
    /// Connections closed from the target's side (the master dropped them).
    closed_by_target: AtomicU64,
    accepted: AtomicU64,
    /// Ids (accept order) of the connections the target closed.
    closed_ids: Mutex<Vec<u64>>,
    conns: Mutex<Vec<(TcpStream, TcpStream)>>,
}

/// Proxies for several ports at once (the master's control port and its data port range).
pub struct FaultProxy {
    shared: Arc<Shared>,
}

impl FaultProxy {
    /// Listens on `listen_ip:port` for every port and forwards to `target_ip:port`.
    pub fn start(
        listen_ip: &str,
        target_ip: &str,
        ports: impl IntoIterator<Item = u16>,
    ) -> FaultProxy {
        let shared = Arc::new(Shared::default());
        for port in ports {
            let listener = TcpListener::bind((listen_ip, port)).expect("proxy listen");
            listener.set_nonblocking(true).unwrap();
            let target: SocketAddr = format!("{target_ip}:{port}").parse().unwrap();
            let shared = shared.clone();
            std::thread::spawn(move || accept_loop(listener, target, shared));
        }
        FaultProxy { shared }
    }

    /// Resets every open connection with an RST (SO_LINGER 0), whatever is in flight.
    pub fn reset_all(&self) {
        let conns = std::mem::take(&mut *self.shared.conns.lock().unwrap());
        for (a, b) in conns {
            for s in [&a, &b] {
                let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }

    /// Stops forwarding in both directions; sockets stay open (a half-open path).
    pub fn blackhole(&self) {
        self.shared.mode.store(BLACKHOLE, Ordering::SeqCst);
    }

    /// Forwards again.
    pub fn pass(&self) {
        self.shared.mode.store(PASS, Ordering::SeqCst);
    }

    /// Connections the target closed so far.
    pub fn closed_by_target(&self) -> u64 {
        self.shared.closed_by_target.load(Ordering::SeqCst)
    }

    /// Whether the target has closed every connection accepted before the `n`th.
    pub fn target_closed_all_before(&self, n: u64) -> bool {
        let closed = self.shared.closed_ids.lock().unwrap();
        (0..n).all(|id| closed.contains(&id))
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.reset_all();
    }
}

fn accept_loop(listener: TcpListener, target: SocketAddr, shared: Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                let id = shared.accepted.fetch_add(1, Ordering::SeqCst);
                let _ = client.set_nonblocking(false);
                if let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) {
                    shared.conns.lock().unwrap().push((c2, s2));
                }
                let (c_read, s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let sh = shared.clone();
                std::thread::spawn(move || pump(c_read, s_write, sh, None));
                let sh = shared.clone();
                std::thread::spawn(move || pump(server, client, sh, Some(id)));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => return,
        }
    }
}

/// Copies `from` -> `to` until either side closes; in blackhole mode drops what it reads, so
/// neither peer gets anything and neither sees an error.
/// `target_id` is the connection's id when `from` is the target's side.
fn pump(mut from: TcpStream, mut to: TcpStream, shared: Arc<Shared>, target_id: Option<u64>) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let blackhole = shared.mode.load(Ordering::SeqCst) == BLACKHOLE;
        match from.read(&mut buf) {
            Ok(0) => {
                if let Some(id) = target_id {
                    shared.closed_by_target.fetch_add(1, Ordering::SeqCst);
                    shared.closed_ids.lock().unwrap().push(id);
                }
                let _ = to.shutdown(Shutdown::Both);
                return;
            }
            // Dark path: what is read is dropped, nothing reaches the other side and nothing
            // errors, as when the far host has vanished.
            Ok(_) if blackhole => {}
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    let _ = from.shutdown(Shutdown::Both);
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {
                if let Some(id) = target_id {
                    shared.closed_by_target.fetch_add(1, Ordering::SeqCst);
                    shared.closed_ids.lock().unwrap().push(id);
                }
                let _ = to.shutdown(Shutdown::Both);
                return;
            }
        }
    }
}
