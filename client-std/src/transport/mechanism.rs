//! The one place that picks the ZMTP security mechanism of this node's native connections
//! (data and control alike): NULL, or PLAIN with a user name and password. CURVE slots in here as
//! a third variant (core's `Connection::curve_client`, behind core's `curve` feature).

use zerosmq_core::zmtp::{Connection, PlainCredentials, SocketType};

use super::handshake::ConnectError;

/// How a node's native connections authenticate to the master.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Mechanism {
    Null,
    Plain { user: String, password: String },
}

impl Mechanism {
    /// PLAIN when credentials are given, else NULL.
    pub(crate) fn from_plain(credentials: Option<&(String, String)>) -> Mechanism {
        match credentials {
            Some((user, password)) => Mechanism::Plain {
                user: user.clone(),
                password: password.clone(),
            },
            None => Mechanism::Null,
        }
    }

    /// A fresh client connection of `socket_type`, to be kept between steps. PLAIN borrows its
    /// credentials, so the stored connection holds empty ones and [`Mechanism::lend`] puts the
    /// real ones in for each step. Too long credentials are refused as the master would.
    pub(crate) fn client(
        &self,
        socket_type: SocketType,
    ) -> Result<Connection<'static>, ConnectError> {
        Ok(match self {
            Mechanism::Null => Connection::new(socket_type),
            Mechanism::Plain { .. } => {
                self.credentials()?;
                Connection::plain(socket_type, PlainCredentials::EMPTY)
            }
        })
    }

    /// `conn` (made by [`Mechanism::client`]) with this mechanism's secrets, for one step.
    pub(crate) fn lend<'m>(
        &'m self,
        conn: Connection<'static>,
    ) -> Result<Connection<'m>, ConnectError> {
        Ok(match self {
            Mechanism::Null => conn,
            Mechanism::Plain { .. } => conn.with_credentials(self.credentials()?),
        })
    }

    /// `conn` back in storable form after a step.
    pub(crate) fn take_back(&self, conn: Connection<'_>) -> Connection<'static> {
        conn.with_credentials(PlainCredentials::EMPTY)
    }

    fn credentials(&self) -> Result<PlainCredentials<'_>, ConnectError> {
        match self {
            Mechanism::Plain { user, password } => {
                PlainCredentials::new(user, password).map_err(|_| ConnectError::AuthFailed)
            }
            Mechanism::Null => Ok(PlainCredentials::EMPTY),
        }
    }
}
