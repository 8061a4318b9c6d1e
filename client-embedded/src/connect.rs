//! The connect capability: opening TCP connections is the stack's job.
//!
//! The blocking node takes a [`Connect`], the mirror image of `embedded-nal-async`'s
//! `TcpConnect` (which the async node takes directly, and embassy-net's `TcpClient`
//! implements). [`StdConnect`] adapts `std::net::TcpStream` through `embedded-io-adapters`.

use core::net::SocketAddr;

/// Opens TCP connections for the blocking node.
pub trait Connect {
    /// The stack's error, for connecting, reading and writing.
    type Error: embedded_io::Error;
    /// An open connection; it may borrow the stack. `ReadReady` lets a publisher handle what
    /// the master sent (its PINGs) without blocking (smoltcp: `can_recv() || !may_recv()`).
    type Connection<'a>: embedded_io::Read<Error = Self::Error>
        + embedded_io::Write<Error = Self::Error>
        + embedded_io::ReadReady
    where
        Self: 'a;

    /// Connects to `remote`.
    fn connect(&self, remote: SocketAddr) -> Result<Self::Connection<'_>, Self::Error>;
}

impl<T: Connect> Connect for &T {
    type Error = T::Error;
    type Connection<'a>
        = T::Connection<'a>
    where
        Self: 'a;

    fn connect(&self, remote: SocketAddr) -> Result<Self::Connection<'_>, Self::Error> {
        T::connect(self, remote)
    }
}

#[cfg(feature = "std")]
pub use self::std_net::{StdConnect, StdError, StdStream};

#[cfg(feature = "std")]
mod std_net {
    extern crate std;

    use core::net::SocketAddr;
    use std::net::TcpStream;
    use std::time::Duration;

    use embedded_io::{ErrorKind, ErrorType, Read, Write};
    use embedded_io_adapters::std::FromStd;

    /// Connects with `std::net::TcpStream`, for hosts and tests.
    #[derive(Debug, Clone, Copy, Default)]
    pub struct StdConnect {
        /// Read timeout of every connection; a read that times out is [`crate::Error::TimedOut`]
        /// and keeps the connection.
        pub read_timeout: Option<Duration>,
    }

    /// A `std::io::Error` whose timeouts (`WouldBlock` included, which `set_read_timeout`
    /// reports on Unix) are `ErrorKind::TimedOut`.
    #[derive(Debug)]
    pub struct StdError(pub std::io::Error);

    impl core::fmt::Display for StdError {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            self.0.fmt(f)
        }
    }

    impl core::error::Error for StdError {}

    impl embedded_io::Error for StdError {
        fn kind(&self) -> ErrorKind {
            match self.0.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                    ErrorKind::TimedOut
                }
                _ => embedded_io::Error::kind(&self.0),
            }
        }
    }

    /// A `TcpStream` as `embedded_io::{Read, Write}`.
    pub struct StdStream(FromStd<TcpStream>);

    impl core::fmt::Debug for StdStream {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.debug_tuple("StdStream").field(self.0.inner()).finish()
        }
    }

    impl ErrorType for StdStream {
        type Error = StdError;
    }

    impl Read for StdStream {
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, StdError> {
            self.0.read(buf).map_err(StdError)
        }
    }

    impl Write for StdStream {
        fn write(&mut self, buf: &[u8]) -> Result<usize, StdError> {
            self.0.write(buf).map_err(StdError)
        }

        fn flush(&mut self) -> Result<(), StdError> {
            self.0.flush().map_err(StdError)
        }
    }

    impl embedded_io::ReadReady for StdStream {
        fn read_ready(&mut self) -> Result<bool, StdError> {
            // Ready when a byte (or EOF) is there: peek without blocking.
            let s = self.0.inner();
            s.set_nonblocking(true).map_err(StdError)?;
            let peeked = s.peek(&mut [0u8; 1]);
            s.set_nonblocking(false).map_err(StdError)?;
            match peeked {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(false),
                Err(e) => Err(StdError(e)),
            }
        }
    }

    impl super::Connect for StdConnect {
        type Error = StdError;
        type Connection<'a> = StdStream;

        fn connect(&self, remote: SocketAddr) -> Result<StdStream, StdError> {
            let s = TcpStream::connect(remote).map_err(StdError)?;
            s.set_nodelay(true).map_err(StdError)?;
            s.set_read_timeout(self.read_timeout).map_err(StdError)?;
            Ok(StdStream(FromStd::new(s)))
        }
    }
}
