//! Routes every peer to the one transport that reaches it.
//!
//! Invariant: a peer's route never changes after init, so all frames to one peer go
//! through one FIFO transport and keep their order.

use std::time::Duration;

use super::frame::OutFrame;
use super::loopback::Loopback;
use super::tcp::Tcp;
use super::{Sink, Transport};
use crate::error::Result;

/// Which transport reaches a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// This rank itself.
    Loopback,
    /// A TCP connection.
    Tcp,
}

/// All transports of this rank, and the route to each peer.
pub(crate) struct Network {
    routes: Vec<Route>,
    lo: Loopback,
    tcp: Option<Tcp>,
}

impl Network {
    pub(crate) fn new(me: usize, routes: Vec<Route>, tcp: Option<Tcp>) -> Network {
        debug_assert!(routes.iter().all(|r| *r != Route::Tcp) || tcp.is_some());
        Network {
            routes,
            lo: Loopback::new(me),
            tcp,
        }
    }

    fn transport(&mut self, peer: usize) -> &mut dyn Transport {
        match self.routes[peer] {
            Route::Loopback => &mut self.lo,
            Route::Tcp => self
                .tcp
                .as_mut()
                .expect("a TCP route implies a TCP transport"),
        }
    }

    /// See [`Transport::send`].
    pub(crate) fn send(&mut self, peer: usize, frame: OutFrame) -> Result<bool> {
        self.transport(peer).send(peer, frame)
    }

    /// Progresses every transport once.
    pub(crate) fn progress(&mut self, sink: &mut dyn Sink) -> Result<bool> {
        let mut moved = self.lo.progress(sink)?;
        if let Some(tcp) = self.tcp.as_mut() {
            moved |= tcp.progress(sink)?;
        }
        Ok(moved)
    }

    /// Largest message sent eagerly to `peer`.
    pub(crate) fn eager_limit(&self, peer: usize) -> usize {
        match self.routes[peer] {
            Route::Loopback => self.lo.eager_limit(),
            Route::Tcp => self.tcp.as_ref().map_or(0, |t| t.eager_limit()),
        }
    }

    /// Sleeps until something may have arrived, or `timeout` passed.
    pub(crate) fn block(&mut self, timeout: Duration) -> Result<()> {
        if self.lo.has_backlog() {
            return Ok(());
        }
        match self.tcp.as_mut() {
            Some(tcp) => tcp.block(timeout),
            None => {
                std::thread::sleep(timeout.min(Duration::from_millis(1)));
                Ok(())
            }
        }
    }

    /// Closed connections are expected from now on.
    pub(crate) fn set_closing(&mut self) {
        if let Some(tcp) = self.tcp.as_mut() {
            tcp.set_closing();
        }
    }
}
