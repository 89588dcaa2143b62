//! Starting and ending oxmpi in a process (MPI's environment chapter): [`init`],
//! [`Universe`], [`wtime`], error modes.
//!
//! `init` reads the launcher's environment, connects the transports and returns the
//! [`Universe`], whose drop (or [`Universe::finalize`]) ends this rank's part in the
//! job. Invariant: at most one universe per process at a time.

use std::marker::PhantomData;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Instant;

use crate::bootstrap::Bootstrap;
use crate::comm::Comm;
use crate::engine::{self, Engine, wait};
use crate::error::{Error, Result};
use crate::settings;
use crate::transport::network::{Network, Route};
use crate::transport::shm::{self, Decline, Segment, Shm};
use crate::transport::tcp::{Congestion, Tcp};

/// What a call does when the job itself fails (a peer died, a frame was malformed,
/// the launcher went away); mistakes in a call's own arguments are always returned.
///
/// ```
/// # fn main() -> oxmpi::Result<()> {
/// use oxmpi::{Error, ErrorMode};
/// let universe = oxmpi::init()?;
/// universe.set_error_mode(ErrorMode::Return)?;
/// let world = universe.world();
/// // An argument mistake is returned in either mode.
/// let wrong = world.send(&[1u8], world.size(), 0);
/// assert!(matches!(wrong, Err(Error::InvalidRank { .. })));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorMode {
    /// Print the failure, naming this rank, and end the whole job
    /// (`MPI_ERRORS_ARE_FATAL`). The default.
    Fatal,
    /// Return the failure as `Err` and let the caller decide (`MPI_ERRORS_RETURN`).
    Return,
}

/// How threads may use oxmpi (`MPI_Init_thread`'s levels).
///
/// ```
/// # fn main() -> oxmpi::Result<()> {
/// let universe = oxmpi::init()?;
/// let world = universe.world();
/// // Another thread may compute, but not call oxmpi.
/// let elsewhere = std::thread::spawn(move || world.barrier().is_err());
/// assert!(elsewhere.join().unwrap());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threading {
    /// Every call comes from the thread that called [`init`] (`MPI_THREAD_FUNNELED`);
    /// a call from another thread fails with [`Error::WrongThread`]. Other threads may
    /// compute freely. Communicators are `Send` but not `Sync`.
    Funneled,
}

/// The running library. Dropping it finalizes this rank (`MPI_Finalize`).
///
/// ```
/// # fn main() -> oxmpi::Result<()> {
/// let universe = oxmpi::init()?;
/// let world = universe.world();
/// println!("hello from rank {} of {}", world.rank(), world.size());
/// universe.finalize()?;
/// # Ok(()) }
/// ```
///
/// A `Universe` stays on the thread that called [`init`] (it is not `Send`): only that
/// thread may finalize (`MPI_THREAD_FUNNELED`).
///
/// ```compile_fail
/// let universe = oxmpi::init().unwrap();
/// std::thread::spawn(move || universe.finalize()).join().unwrap().unwrap();
/// ```
///
/// It may be kept in a `thread_local!` of that thread: it finalizes when the thread's
/// thread-locals are destroyed, as the thread ends (for the main thread, at process
/// exit, where the platform runs their destructors then, as Linux does).
///
/// ```
/// # fn main() -> oxmpi::Result<()> {
/// use std::cell::RefCell;
/// thread_local! {
///     static UNIVERSE: RefCell<Option<oxmpi::Universe>> = const { RefCell::new(None) };
/// }
/// std::thread::spawn(|| -> oxmpi::Result<()> {
///     let universe = oxmpi::init()?;
///     let world = universe.world();
///     UNIVERSE.with(|u| *u.borrow_mut() = Some(universe));
///     world.barrier()
/// })
/// .join()
/// .expect("no panic")?;
/// // Finalized as the thread ended.
/// assert!(matches!(oxmpi::init(), Err(oxmpi::Error::Finalized)));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Universe {
    world: Comm,
    finalized: bool,
    /// Not `Send`: the engine belongs to the thread that called [`init`].
    _funneled: PhantomData<*const ()>,
}

/// Which transports to use, from `OXMPI_TRANSPORT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TransportChoice {
    /// The best transport per peer.
    Auto,
    /// TCP for every peer but self.
    Tcp,
}

impl TransportChoice {
    fn from_env() -> Result<TransportChoice> {
        match settings::text("OXMPI_TRANSPORT")?.as_deref() {
            None | Some("" | "auto") => Ok(TransportChoice::Auto),
            Some("tcp") => Ok(TransportChoice::Tcp),
            Some(other) => Err(Error::config("OXMPI_TRANSPORT", other, "one of: auto, tcp")),
        }
    }
}

fn error_mode_from_env() -> Result<ErrorMode> {
    match settings::text("OXMPI_ERRORS")?.as_deref() {
        None | Some("" | "fatal") => Ok(ErrorMode::Fatal),
        Some("return") => Ok(ErrorMode::Return),
        Some(other) => Err(Error::config("OXMPI_ERRORS", other, "fatal or return")),
    }
}

fn host_addr() -> Result<IpAddr> {
    match settings::text("OXMPI_HOST_ADDR")? {
        None => Ok(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        Some(v) => v
            .parse()
            .map_err(|_| Error::config("OXMPI_HOST_ADDR", v, "an IP address of this host")),
    }
}

/// The shared-memory settings: `OXMPI_SHM_RING_KB` (inbox ring size per rank),
/// `OXMPI_EAGER_LIMIT`, `OXMPI_SHM_CHUNK` (bytes per frame when streaming a large
/// message), `OXMPI_SHM_SINGLE_COPY` (0 forces the streaming path, 1 the single copy
/// where the kernel allows it; unset or `auto`: receivers choose by timing both),
/// `OXMPI_SHM_SPLIT`
/// (smallest single-copy message both ends copy, even where the sender is reading one
/// of the receiver's; 0: never), `OXMPI_SHM_MEMBARRIER` (0:
/// publishers fence instead of sleepers' `membarrier` calls), `OXMPI_SHM_HUGE_PAGES`
/// (0: the memory lent to single copies stays on the pages it has). Checked against one
/// another by [`shm::Config::validated`] where shared memory is used.
fn shm_config(eager: Option<usize>, oversubscribed: bool) -> Result<shm::Config> {
    let ring_kb =
        settings::number("OXMPI_SHM_RING_KB")?.map_or(shm::Config::DEFAULT_RING_KB, |n| n as usize);
    // Unset or `auto`: single copy where allowed, or streaming where receivers find
    // it faster (not among ranks sharing cores, which would switch for every chunk).
    let (single_copy, learn) = match settings::text("OXMPI_SHM_SINGLE_COPY")?.as_deref() {
        None | Some("" | "auto") => (true, !oversubscribed),
        Some("1") => (true, false),
        Some("0") => (false, false),
        Some(other) => {
            return Err(Error::config(
                "OXMPI_SHM_SINGLE_COPY",
                other,
                "0, 1 or auto",
            ));
        }
    };
    let membarrier = settings::switch("OXMPI_SHM_MEMBARRIER")?;
    let huge_pages = settings::switch("OXMPI_SHM_HUGE_PAGES")?;
    let split = settings::number("OXMPI_SHM_SPLIT")?;
    let ring_lines = ring_kb.saturating_mul(1024) / 64;
    // Defaults fit the ring; values set explicitly are checked against it.
    let cap = shm::Config::largest_payload(ring_lines);
    Ok(shm::Config {
        ring_lines,
        // Ranks sharing cores pay a context switch for every rendezvous round trip, so
        // they send more eagerly (bcast of 8 KiB on 4 ranks over 2 cores: 3 us eager,
        // 11-24 us by rendezvous).
        eager_limit: eager.unwrap_or(if oversubscribed {
            shm::Config::OVERSUBSCRIBED_EAGER.min(cap)
        } else {
            shm::Config::DEFAULT_EAGER.min(cap)
        }),
        chunk: settings::number("OXMPI_SHM_CHUNK")?
            .map_or(shm::Config::DEFAULT_CHUNK.min(cap), |n| n as usize),
        single_copy,
        learn,
        membarrier,
        huge_pages,
        // Splitting a copy pays only with a core free for the sender.
        split: match split {
            Some(0) => None,
            Some(n) => Some(n as usize),
            None => (!oversubscribed).then_some(shm::Config::DEFAULT_SPLIT),
        },
        split_busy: split.is_some(),
    })
}

/// Starts oxmpi in this process (`MPI_Init`).
///
/// Under `oxrun` (or any PMI-1 launcher) the process joins the job; started alone it
/// is rank 0 of a world of 1.
///
/// ```
/// # fn main() -> oxmpi::Result<()> {
/// let universe = oxmpi::init()?;
/// assert!(universe.world().size() >= 1);
/// # Ok(()) }
/// ```
pub fn init() -> Result<Universe> {
    // Held from here on, so that a second thread calling `init` meanwhile is refused.
    let claim = engine::claim()?;
    if FINALIZED.load(Ordering::Relaxed) {
        return Err(Error::Finalized);
    }
    wtime();
    let choice = TransportChoice::from_env()?;
    let error_mode = error_mode_from_env()?;
    let eager = settings::number("OXMPI_EAGER_LIMIT")?.map(|n| n as usize);
    let budget = settings::number("OXMPI_UNEXPECTED_BYTES")?.map_or(64 << 20, |n| n as usize);
    let mut boot = Bootstrap::from_env()?;
    let policy = wait::WaitPolicy::from_env(boot.oversubscribed)?;
    let (rank, size) = (boot.rank, boot.size);
    let node = boot.nodes[rank];
    let local_ranks: Vec<usize> = (0..size).filter(|&r| boot.nodes[r] == node).collect();
    let use_shm = choice == TransportChoice::Auto && local_ranks.len() > 1;
    let routes: Vec<Route> = (0..size)
        .map(|p| {
            if p == rank {
                Route::Loopback
            } else if use_shm && boot.nodes[p] == node {
                Route::Shm
            } else {
                Route::Tcp
            }
        })
        .collect();
    // Every variable is read whichever transports this rank uses: one that does not
    // parse is an error here, not only on the jobs that happen to read it.
    let shm_config = shm_config(eager, boot.oversubscribed)?.validated(use_shm)?;
    let host = host_addr()?;
    let congestion = Congestion::from_env(host)?;
    crate::coll::select::env()?;
    // The node's first rank creates the segment before the fence; the others open it
    // after.
    let shm_config = use_shm.then_some(shm_config);
    let segment_name = Segment::name(&boot.job_id, node);
    let segment_job = boot.job_id.clone();
    let created = match shm_config {
        Some(c) if local_ranks[0] == rank => Some(Segment::create(
            &segment_name,
            local_ranks.len(),
            c.ring_lines,
        )?),
        _ => None,
    };
    let listener = if routes.contains(&Route::Tcp) {
        let listener = crate::transport::tcp::listen(host, &congestion)?;
        let addr = listener
            .socket
            .local_addr()
            .map_err(|e| Error::io("reading the listener's address", e))?;
        boot.put(&format!("oxmpi-tcp-{rank}"), &addr.to_string())?;
        Some(listener)
    } else {
        None
    };
    let early_secret = if size > 1 {
        boot.secret_before_fence()?
    } else {
        None
    };
    boot.fence()?;
    let secret = if size > 1 {
        Some(boot.secret_after_fence(early_secret)?)
    } else {
        None
    };
    // Each rank chose its transports from its own settings. A rank talking to its
    // node over TCP where the node's first rank made shared memory says so there, and
    // fails, so that nobody waits for it to attach; a rank wanting shared memory
    // where the first rank made none fails at once.
    let first = local_ranks[0];
    if shm_config.is_none()
        && local_ranks.len() > 1
        && let Ok(segment) = Segment::open(&segment_name)
    {
        segment.decline(rank, Decline::Tcp);
        return Err(Error::config(
            "OXMPI_TRANSPORT",
            std::env::var("OXMPI_TRANSPORT").unwrap_or_default(),
            format!(
                "rank {first}, this node's first, uses shared memory: every rank of a node must set it alike"
            ),
        ));
    }
    let shm = match shm_config {
        Some(config) => {
            let segment = match created {
                Some(s) => s,
                None => Segment::open(&segment_name).map_err(|e| {
                    Error::Bootstrap(format!(
                        "{e}: rank {first}, this node's first, made no shared memory for it (do all ranks of the node set OXMPI_TRANSPORT and OXMPI_SHM_RING_KB alike?)"
                    ))
                })?,
            };
            Some(Shm::join(
                rank,
                size,
                &local_ranks,
                segment,
                config,
                &segment_job,
            )?)
        }
        None => None,
    };
    let boot = Arc::new(Mutex::new(boot));
    let tcp = match listener {
        Some(listener) => {
            let shared = Arc::clone(&boot);
            let node = local_ranks.clone();
            let resolver = Box::new(move |peer: usize| {
                let got = shared
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get(&format!("oxmpi-tcp-{peer}"));
                // A rank of this node with no address talks to it over shared memory
                // only: it set OXMPI_TRANSPORT otherwise (it fails too, at its
                // `shm_open`, but this rank's own report may end the job first).
                let text = match got {
                    Err(_) if node.contains(&peer) => {
                        return Err(Error::config(
                            "OXMPI_TRANSPORT",
                            std::env::var("OXMPI_TRANSPORT").unwrap_or_default(),
                            format!(
                                "rank {peer} of this node uses shared memory (it published no TCP address): every rank of a node must set it alike"
                            ),
                        ));
                    }
                    got => got?,
                };
                text.parse::<SocketAddr>().map_err(|_| {
                    Error::Bootstrap(format!("rank {peer} published a bad address {text:?}"))
                })
            });
            let secret = secret.expect("size > 1 with TCP peers");
            let credit = engine::credit_per_peer(budget, size);
            Some(Tcp::new(
                rank, size, secret, listener, eager, credit, resolver,
            )?)
        }
        None => None,
    };
    let net = Network::new(rank, routes, shm, tcp);
    engine::install(claim, Engine::new(boot, net, policy, budget, error_mode));
    Ok(Universe {
        world: Comm::world(rank, size),
        finalized: false,
        _funneled: PhantomData,
    })
}

impl Universe {
    /// The communicator of all ranks in the job (`MPI_COMM_WORLD`).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// assert!(world.rank() < world.size());
    /// # Ok(()) }
    /// ```
    pub fn world(&self) -> Comm {
        self.world.clone()
    }

    /// The thread level this library offers (`MPI_Query_thread`).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// use oxmpi::Threading;
    /// let universe = oxmpi::init()?;
    /// assert_eq!(universe.threading(), Threading::Funneled);
    /// # Ok(()) }
    /// ```
    pub fn threading(&self) -> Threading {
        Threading::Funneled
    }

    /// Chooses what happens when the job itself fails; see [`ErrorMode`]
    /// (`MPI_Comm_set_errhandler` on `MPI_COMM_WORLD`; `OXMPI_ERRORS` sets the
    /// starting mode).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// universe.set_error_mode(oxmpi::ErrorMode::Return)?;
    /// # Ok(()) }
    /// ```
    pub fn set_error_mode(&self, mode: ErrorMode) -> Result<()> {
        engine::with(|e| {
            e.error_mode = mode;
            Ok(())
        })
    }

    /// Whether the launcher placed more ranks on this node than it has cores (ranks
    /// then wait politely rather than spin).
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// if universe.oversubscribed()? {
    ///     eprintln!("ranks share cores: timings will be noisy");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn oversubscribed(&self) -> Result<bool> {
        engine::with(|e| {
            Ok(e.boot
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .oversubscribed)
        })
    }

    /// Ends this rank's part in the job (`MPI_Finalize`): waits until every rank has
    /// finalized, then reports to the launcher. Messages nobody received are dropped.
    ///
    /// ```
    /// # fn main() -> oxmpi::Result<()> {
    /// let universe = oxmpi::init()?;
    /// let world = universe.world();
    /// world.barrier()?;
    /// universe.finalize()?;
    /// // The communicator outlives the universe, but no call works any more.
    /// assert!(world.barrier().is_err());
    /// # Ok(()) }
    /// ```
    pub fn finalize(mut self) -> Result<()> {
        self.finalized = true;
        match engine::uninstall() {
            Some(e) => finish(e, false),
            None => Err(Error::NotInitialized),
        }
    }
}

/// Set once this process has finalized: it cannot initialize again (as
/// `MPI_Init` after `MPI_Finalize`).
static FINALIZED: AtomicBool = AtomicBool::new(false);

/// Finalizes the engine, then frees what this thread kept for temporaries. `dropped`:
/// the `Universe` was dropped unfinalized (the program is ending).
fn finish(e: Engine, dropped: bool) -> Result<()> {
    FINALIZED.store(true, Ordering::Relaxed);
    let result = e.finalize(dropped);
    crate::userbuf::release_kept();
    result
}

impl Drop for Universe {
    fn drop(&mut self) {
        if self.finalized {
            return;
        }
        if std::thread::panicking() {
            // Finalizing would wait for every other rank, and a rank waiting for a
            // message from this one would never get there: end the job instead (the
            // panic message is already printed).
            let why = format!("rank {} panicked; ending the job", self.world.rank());
            let _ = engine::with(|e| -> Result<()> { e.abort_job(101, &why, true) });
            crate::error::report(&why);
            std::process::exit(101);
        }
        // A job the launcher ended while this rank finalized is the launcher's to
        // report (a `main` returning an error prints that error next); a failure this
        // rank met before (`broken`, in return-errors mode) only it can report.
        if let Some(e) = engine::uninstall() {
            let broken = e.broken();
            if let Err(err) = finish(e, true)
                && (broken || !matches!(err, Error::JobFailed(_)))
            {
                let rank = self.world.rank();
                crate::error::report(format_args!("rank {rank}: finalize failed: {err}"));
            }
        }
    }
}

/// Seconds since an arbitrary point in this process's past (`MPI_Wtime`), from a
/// monotonic clock.
///
/// ```
/// let t0 = oxmpi::wtime();
/// assert!(oxmpi::wtime() >= t0);
/// ```
pub fn wtime() -> f64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

/// Resolution of [`wtime`] in seconds (`MPI_Wtick`).
///
/// ```
/// assert!(oxmpi::wtick() > 0.0 && oxmpi::wtick() < 1e-3);
/// ```
pub fn wtick() -> f64 {
    1e-9
}
