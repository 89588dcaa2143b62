//! The TCP transport: one outgoing and one incoming connection per pair of ranks
//! that talk, opened lazily on first send.
//!
//! Each rank listens on one socket and publishes its address through the bootstrap.
//! A rank sends only on connections it opened and receives only on connections it
//! accepted, so two ranks that start talking at the same moment never race to set up
//! one shared connection, and frames from one sender always travel one stream in order.
//! Readiness comes from `mio` (edge-triggered); sockets are non-blocking with
//! `TCP_NODELAY`. A closed or reset connection outside finalize is a lost peer.

mod hello;
mod incoming;
mod outgoing;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use mio::net::{TcpListener, TcpStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use std::os::fd::RawFd;

use super::frame::OutFrame;
use super::{Sink, Transport};
use crate::error::{Error, Result};
use hello::Hello;
pub(crate) use incoming::MAX_INLINE;
use incoming::{Incoming, Pump};
use outgoing::Outgoing;

/// Finds a peer's listening address (through the bootstrap's key-value space).
pub(crate) type Resolver = Box<dyn FnMut(usize) -> Result<SocketAddr> + Send>;

const LISTENER: Token = Token(usize::MAX);
/// Another transport's wake-up socket, polled while sleeping.
const WAKE: Token = Token(usize::MAX - 1);
const DEFAULT_EAGER: usize = 32 * 1024;
/// Up to this many incoming connections, progress reads them directly...
const DIRECT_READS: usize = 4;
/// ...and asks the poller (new connections, writability, closes) every this many calls.
const POLL_EVERY: u32 = 16;

#[derive(Clone, Copy)]
struct Ready {
    token: Token,
    closed: bool,
}

/// TCP connections to every peer this rank has talked to.
pub(crate) struct Tcp {
    me: usize,
    size: usize,
    secret: [u8; 16],
    poll: Poll,
    events: Events,
    listener: TcpListener,
    resolver: Resolver,
    /// Outgoing connection per peer (token = peer).
    out: Vec<Option<Outgoing>>,
    /// Accepted connections (token = size + index).
    incoming: Vec<Option<Incoming>>,
    /// Readiness seen but not yet handled.
    ready: Vec<Ready>,
    sent: Vec<u64>,
    eager_limit: usize,
    wake_registered: bool,
    /// Progress calls so far.
    ticks: u32,
    closing: bool,
}

impl Tcp {
    /// Serves `listener` (whose address the peers learned through the bootstrap).
    pub(crate) fn new(
        me: usize,
        size: usize,
        secret: [u8; 16],
        listener: std::net::TcpListener,
        eager_limit: Option<usize>,
        resolver: Resolver,
    ) -> Result<Tcp> {
        let poll = Poll::new().map_err(|e| Error::io("creating the TCP poller", e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("configuring the TCP listener", e))?;
        let mut listener = TcpListener::from_std(listener);
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(|e| Error::io("registering the TCP listener", e))?;
        Ok(Tcp {
            me,
            size,
            secret,
            poll,
            events: Events::with_capacity(256),
            listener,
            resolver,
            out: (0..size).map(|_| None).collect(),
            incoming: Vec::new(),
            ready: Vec::new(),
            sent: Vec::new(),
            wake_registered: false,
            ticks: 0,
            eager_limit: eager_limit.unwrap_or(DEFAULT_EAGER).min(MAX_INLINE),
            closing: false,
        })
    }

    /// Whether this rank has opened its connection to `peer`.
    pub(crate) fn connected(&self, peer: usize) -> bool {
        self.out[peer].is_some()
    }

    /// From now on closed connections are expected (the job is finalizing).
    pub(crate) fn set_closing(&mut self) {
        self.closing = true;
    }

    /// Waits up to `timeout` for any socket to become ready.
    pub(crate) fn block(&mut self, timeout: Duration) -> Result<()> {
        if !self.ready.is_empty() {
            return Ok(());
        }
        self.poll_into_ready(Some(timeout))
    }

    /// Like [`Tcp::block`], but also wakes when `wake` (a socket another transport is
    /// woken through) becomes readable.
    pub(crate) fn block_with(&mut self, timeout: Duration, wake: RawFd) -> Result<()> {
        if !self.wake_registered {
            self.poll
                .registry()
                .register(&mut SourceFd(&wake), WAKE, Interest::READABLE)
                .map_err(|e| Error::io("registering the wake-up socket", e))?;
            self.wake_registered = true;
        }
        self.block(timeout)
    }

    fn poll_into_ready(&mut self, timeout: Option<Duration>) -> Result<()> {
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(Error::io("polling TCP sockets", e)),
        }
        for ev in self.events.iter() {
            self.ready.push(Ready {
                token: ev.token(),
                closed: ev.is_read_closed() || ev.is_error(),
            });
        }
        Ok(())
    }

    fn lost(&self, peer: usize, detail: String) -> Error {
        Error::PeerLost {
            rank: self.me as i32,
            peer: peer as i32,
            detail,
        }
    }

    fn connect(&mut self, peer: usize) -> Result<&mut Outgoing> {
        if self.out[peer].is_none() {
            let addr = (self.resolver)(peer)?;
            let lost = |e: io::Error| self.lost(peer, format!("connecting to {addr} failed: {e}"));
            let mut std_stream = std::net::TcpStream::connect(addr).map_err(lost)?;
            std_stream.set_nodelay(true).map_err(lost)?;
            let hello = Hello::new(self.secret, self.me, self.size);
            io::Write::write_all(&mut std_stream, bytemuck::bytes_of(&hello)).map_err(lost)?;
            std_stream.set_nonblocking(true).map_err(lost)?;
            let mut stream = TcpStream::from_std(std_stream);
            self.poll
                .registry()
                .register(&mut stream, Token(peer), Interest::READABLE)
                .map_err(|e| Error::io("registering a TCP connection", e))?;
            self.out[peer] = Some(Outgoing::new(stream));
        }
        Ok(self.out[peer].as_mut().expect("connected above"))
    }

    fn accept_all(&mut self) -> Result<()> {
        loop {
            let (mut stream, _) = match self.listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("accepting a TCP connection", e)),
            };
            stream
                .set_nodelay(true)
                .map_err(|e| Error::io("setting TCP_NODELAY", e))?;
            let slot = match self.incoming.iter().position(Option::is_none) {
                Some(i) => i,
                None => {
                    self.incoming.push(None);
                    self.incoming.len() - 1
                }
            };
            self.poll
                .registry()
                .register(&mut stream, Token(self.size + slot), Interest::READABLE)
                .map_err(|e| Error::io("registering a TCP connection", e))?;
            self.incoming[slot] = Some(Incoming::new(stream));
            // Data may already be waiting; the edge may have passed before registration.
            self.ready.push(Ready {
                token: Token(self.size + slot),
                closed: false,
            });
        }
    }

    fn pump_incoming(&mut self, slot: usize, sink: &mut dyn Sink) -> Result<bool> {
        let Some(conn) = self.incoming[slot].as_mut() else {
            return Ok(false);
        };
        let result = conn.pump(self.me, self.size, &self.secret, sink);
        match result {
            Ok((Pump::Drained, moved)) => Ok(moved),
            Ok((Pump::Closed, moved)) => {
                let peer = conn.peer;
                self.close_incoming(slot);
                match peer {
                    Some(p) if !self.closing => {
                        Err(self.lost(p, "it closed its connection".into()))
                    }
                    _ => Ok(moved),
                }
            }
            Err(e) => {
                let stranger = conn.peer.is_none();
                self.close_incoming(slot);
                if self.closing || stranger {
                    // A connection that never proved it belongs to the job is dropped
                    // with a warning; it must not end the job.
                    if stranger && !self.closing {
                        eprintln!("oxmpi: {e}");
                    }
                    Ok(true)
                } else {
                    Err(e)
                }
            }
        }
    }

    fn close_incoming(&mut self, slot: usize) {
        if let Some(mut conn) = self.incoming[slot].take() {
            let _ = self.poll.registry().deregister(&mut conn.stream);
        }
    }

    fn flush_out(&mut self, peer: usize, sink: &mut dyn Sink) -> Result<()> {
        let Some(conn) = self.out[peer].as_mut() else {
            return Ok(());
        };
        let sent = &mut self.sent;
        if let Err(e) = conn.flush(&mut |t| sent.push(t)) {
            if !self.closing {
                return Err(self.lost(peer, format!("writing to it failed: {e}")));
            }
        }
        for t in self.sent.drain(..) {
            sink.sent(t)?;
        }
        self.watch_writable(peer)
    }

    /// Asks the poller for writability of `peer`'s connection exactly while frames
    /// wait in its queue (an idle connection would report every acknowledgement).
    fn watch_writable(&mut self, peer: usize) -> Result<()> {
        let Some(conn) = self.out[peer].as_mut() else {
            return Ok(());
        };
        let want = conn.has_queue();
        if want != conn.watching_writable {
            let interest = if want {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            self.poll
                .registry()
                .reregister(&mut conn.stream, Token(peer), interest)
                .map_err(|e| Error::io("watching a TCP connection", e))?;
            conn.watching_writable = want;
        }
        Ok(())
    }
}

impl Transport for Tcp {
    fn send(&mut self, peer: usize, frame: OutFrame) -> Result<bool> {
        // Finalizing: every rank is done communicating and a peer may already be
        // gone; what is left to send (credit returns) is of no use to anyone.
        let closing = self.closing;
        let conn = match self.connect(peer) {
            Ok(conn) => conn,
            Err(_) if closing => return Ok(true),
            Err(e) => return Err(e),
        };
        match conn.push(frame) {
            Ok(true) => Ok(true),
            Ok(false) => self.watch_writable(peer).map(|()| false),
            Err(_) if closing => Ok(true),
            Err(e) => Err(self.lost(peer, format!("writing to it failed: {e}"))),
        }
    }

    fn tag_last(&mut self, peer: usize, token: u64) {
        if let Some(conn) = self.out[peer].as_mut() {
            conn.tag_last(token);
        }
    }

    fn progress(&mut self, sink: &mut dyn Sink) -> Result<bool> {
        self.ticks = self.ticks.wrapping_add(1);
        let live = self.incoming.iter().filter(|c| c.is_some()).count();
        if live > DIRECT_READS || self.ticks % POLL_EVERY == 0 {
            self.poll_into_ready(Some(Duration::ZERO))?;
        } else {
            // With few connections a read attempt on each costs no more than asking
            // the poller, and finds an arrival one system call sooner.
            for (slot, c) in self.incoming.iter().enumerate() {
                if c.is_some() {
                    self.ready.push(Ready {
                        token: Token(self.size + slot),
                        closed: false,
                    });
                }
            }
        }
        let mut moved = false;
        let ready = std::mem::take(&mut self.ready);
        for r in &ready {
            match r.token {
                LISTENER => self.accept_all()?,
                WAKE => {}
                Token(t) if t < self.size => {
                    if r.closed && !self.closing {
                        return Err(self.lost(t, "its end of our connection closed".into()));
                    }
                    self.flush_out(t, sink)?;
                }
                Token(t) => moved |= self.pump_incoming(t - self.size, sink)?,
            }
        }
        // Connections accepted above queued themselves for a first read.
        let fresh = std::mem::take(&mut self.ready);
        for r in fresh {
            moved |= self.pump_incoming(r.token.0 - self.size, sink)?;
        }
        self.ready = ready;
        self.ready.clear();
        Ok(moved)
    }

    fn eager_limit(&self) -> usize {
        self.eager_limit
    }
}
