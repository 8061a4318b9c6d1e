//! Where topics' listeners bind: a port range walked in turn (or any free port), and the port
//! a restarted master held before (from the state file) tried first.

use std::io;
use std::net::{TcpListener, ToSocketAddrs as _};

/// Where per-topic listeners bind.
#[derive(Debug, Clone)]
pub(crate) struct PortPlan {
    bind: String,
    /// Inclusive range; `None` lets the OS choose a free ephemeral port.
    range: Option<(u16, u16)>,
    /// Next port of the range to try, so ports are not reused right away.
    cursor: u16,
}

impl PortPlan {
    pub(crate) fn new(bind: &str, range: Option<(u16, u16)>) -> Self {
        PortPlan {
            bind: bind.to_owned(),
            cursor: range.map_or(0, |r| r.0),
            range,
        }
    }

    /// The next port of the range to try (0 without a range).
    fn next_port(&mut self) -> u16 {
        let port = self.cursor;
        if let Some((low, high)) = self.range {
            self.cursor = if port >= high { low } else { port + 1 };
        }
        port
    }

    /// A non-blocking listener on `preferred` when it is free (and in the range, if any), else
    /// on any free port of the plan; returns it with its port.
    pub(crate) fn listen_preferred(
        &mut self,
        preferred: Option<u16>,
    ) -> io::Result<(TcpListener, u16)> {
        if let Some(port) =
            preferred.filter(|&p| self.range.is_none_or(|(l, h)| (l..=h).contains(&p)))
        {
            if let Ok(l) = listen(&self.bind, port) {
                return Ok((l, port));
            }
        }
        let Some((low, high)) = self.range else {
            let l = listen(&self.bind, 0)?;
            let port = l.local_addr()?.port();
            return Ok((l, port));
        };
        for _ in 0..=u32::from(high - low) {
            let port = self.next_port();
            match listen(&self.bind, port) {
                Ok(l) => return Ok((l, port)),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::AddrInUse | io::ErrorKind::PermissionDenied
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        Err(io::ErrorKind::AddrInUse.into())
    }
}

/// A non-blocking listener on `bind:port` (`*` and `0.0.0.0` mean every interface, as in libzmq
/// endpoints).
pub(crate) fn listen(bind: &str, port: u16) -> io::Result<TcpListener> {
    let host = match bind {
        "*" => "0.0.0.0",
        other => other.trim_start_matches('[').trim_end_matches(']'),
    };
    let addr = (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or(io::ErrorKind::AddrNotAvailable)?;
    let l = TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_is_walked_in_turn_and_a_taken_port_skipped() {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        let low = probe.local_addr().unwrap().port();
        drop(probe);
        let mut plan = PortPlan::new("127.0.0.1", Some((low, low.saturating_add(2))));
        let (_a, pa) = plan.listen_preferred(None).unwrap();
        let (_b, pb) = plan.listen_preferred(Some(pa)).unwrap();
        assert_ne!(
            pa, pb,
            "a preferred port that is taken falls back to the range"
        );
        assert!((low..=low + 2).contains(&pb));
    }

    #[test]
    fn a_preferred_port_outside_the_range_is_not_used() {
        let mut plan = PortPlan::new("127.0.0.1", None);
        let (l, port) = plan.listen_preferred(None).unwrap();
        drop(l);
        let mut ranged = PortPlan::new("127.0.0.1", Some((1, 1)));
        // Port 1 needs privileges (or is taken): the range is exhausted or gives port 1, and
        // the free preferred port outside it is not taken instead.
        if let Ok((_, got)) = ranged.listen_preferred(Some(port)) {
            assert_eq!(got, 1);
        }
    }
}
