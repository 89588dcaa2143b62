//! Pinning ranks to cores: which core each local rank gets, computed in oxrun from the
//! hwloc topology, applied in the child with `sched_setaffinity`.
//!
//! Local rank `i` gets core `i mod cores`: a core of its own when the ranks fit, else
//! a core shared round-robin (the job is then marked oversubscribed). Sharing ranks
//! stay bound because an even, fixed spread beat the scheduler's placement for the
//! collectives, where every rank works: on 2 cores, 8-rank broadcasts of 1 B took
//! 0.48-0.63 us bound in every run against 0.71-1.13 unbound; A/B against unbound
//! ranks, the 8-rank barrier 0.60 and allreduce of 4 B-8 KiB 0.55-0.69 of the time, 4
//! ranks about even (docs/collectives.md). The price: two ranks that alone are busy
//! while the others sleep run at the speed of one core when they share one
//! (`--bind-to none` lets the scheduler move them apart).
//!
//! Invariants: the topology is loaded unless `--bind-to none` without
//! `--report-bindings` (it costs start-up time); a rank's cpuset never leaves oxrun's
//! own affinity mask; the `cpu_set_t` is built here, so the child only makes one
//! system call and never allocates.

use std::fmt;

use hwlocality::Topology;
use hwlocality::object::types::ObjectType;
use hwlocality::topology::builder::TypeFilter;

use crate::cli::BindTo;

/// One core ranks may be bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Core {
    /// hwloc's logical index of the core (what `lstopo` calls `Core L#i`).
    pub index: usize,
    /// OS indices of its processing units that oxrun may use.
    pub pus: Vec<usize>,
}

/// Where one rank may run.
#[derive(Clone)]
pub enum Binding {
    /// On the PUs of one core.
    Core {
        /// The core.
        core: Core,
        /// The same PUs as a ready-made affinity mask.
        cpuset: libc::cpu_set_t,
    },
    /// Anywhere.
    Unbound(Unbound),
}

impl fmt::Debug for Binding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Binding::Core { core, .. } => f.debug_tuple("Core").field(core).finish(),
            Binding::Unbound(why) => f.debug_tuple("Unbound").field(why).finish(),
        }
    }
}

/// Why a rank is not bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unbound {
    /// `--bind-to none`.
    Requested,
    /// The hardware topology could not be loaded.
    NoTopology,
}

impl Binding {
    /// The value of `OXMPI_BINDING`: `core:<index>` or `none`.
    pub fn env_value(&self) -> String {
        match self {
            Binding::Core { core, .. } => format!("core:{}", core.index),
            Binding::Unbound(_) => "none".to_owned(),
        }
    }

    /// The affinity mask to apply in the child, if any.
    pub fn cpuset(&self) -> Option<libc::cpu_set_t> {
        match self {
            Binding::Core { cpuset, .. } => Some(*cpuset),
            Binding::Unbound(_) => None,
        }
    }

    /// The `--report-bindings` line for `rank`.
    pub fn report(&self, rank: usize) -> String {
        match self {
            Binding::Core { core, .. } => {
                let pus: Vec<String> = core.pus.iter().map(usize::to_string).collect();
                format!(
                    "[oxrun] rank {rank} bound to core {} (PUs {})",
                    core.index,
                    pus.join(",")
                )
            }
            Binding::Unbound(Unbound::Requested) => {
                format!("[oxrun] rank {rank} not bound (--bind-to none)")
            }
            Binding::Unbound(Unbound::NoTopology) => {
                format!("[oxrun] rank {rank} not bound (hardware topology unavailable)")
            }
        }
    }
}

/// The binding of every local rank, in local rank order.
#[derive(Debug, Clone)]
pub struct Plan {
    /// One per local rank.
    pub bindings: Vec<Binding>,
    /// More local ranks than cores (`OXMPI_OVERSUBSCRIBED=1`).
    pub oversubscribed: bool,
}

/// Decides the bindings of `ranks` local ranks: rank `i` on core `i mod cores`.
///
/// `cores` is the topology when it was loaded ([`needs_topology`]); `allowed_pus` is
/// the number of PUs in oxrun's affinity mask. The node is oversubscribed when bound
/// ranks outnumber the cores, or unbound ones the PUs they may all run on (the rule
/// the library applies under other launchers), whether or not the topology was
/// loaded to report the bindings.
pub fn plan(
    ranks: usize,
    requested: Option<BindTo>,
    cores: Option<&[Core]>,
    allowed_pus: usize,
) -> Plan {
    let binds = requested != Some(BindTo::None);
    let ncores = cores.filter(|_| binds).map_or(allowed_pus, <[Core]>::len);
    let oversubscribed = ranks > ncores;
    let unbound = |why| Plan {
        bindings: vec![Binding::Unbound(why); ranks],
        oversubscribed,
    };
    if requested == Some(BindTo::None) {
        return unbound(Unbound::Requested);
    }
    let Some(cores) = cores.filter(|c| !c.is_empty()) else {
        return unbound(Unbound::NoTopology);
    };
    let bindings = cores
        .iter()
        .cycle()
        .take(ranks)
        .map(|core| Binding::Core {
            core: core.clone(),
            cpuset: cpu_set(&core.pus),
        })
        .collect();
    Plan {
        bindings,
        oversubscribed,
    }
}

/// Whether [`plan`] needs the topology: to bind, or to report.
pub fn needs_topology(requested: Option<BindTo>, report: bool) -> bool {
    report || requested != Some(BindTo::None)
}

/// The OS indices of the PUs in oxrun's own affinity mask.
pub fn allowed_pus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data, all-zero is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a writable cpu_set_t of the size passed.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        // Unknown: assume every PU the kernel reports may be used.
        return (0..std::thread::available_parallelism().map_or(1, usize::from)).collect();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: CPU_ISSET only reads the initialised set, index below CPU_SETSIZE.
        .filter(|&i| unsafe { libc::CPU_ISSET(i, &set) })
        .collect()
}

/// hwloc settings that make loading the topology several times faster without
/// changing the cores found: no plugins (they only discover I/O devices and read XML,
/// and loading them costs milliseconds) and no x86 backend (it binds oxrun to every
/// PU in turn to run `cpuid`; cores and PUs come from Linux's sysfs anyway). A value
/// the user set is left alone.
const QUICK_HWLOC: [(&str, &str); 2] = [
    ("HWLOC_PLUGINS_PATH", "/dev/null"),
    ("HWLOC_COMPONENTS", "-x86"),
];

/// The cores of this machine with the PUs of each that lie in `allowed` (cores with
/// none are left out), in hwloc's logical order.
///
/// Must be called while oxrun has a single thread (it sets and restores hwloc's
/// environment variables, see [`QUICK_HWLOC`]).
pub fn load_cores(allowed: &[usize]) -> Result<Vec<Core>, String> {
    let set: Vec<&str> = QUICK_HWLOC
        .iter()
        .filter(|(var, _)| std::env::var_os(var).is_none())
        .map(|&(var, value)| {
            // SAFETY: oxrun is still single-threaded here (main calls this before the
            // job starts any thread), so nothing reads the environment concurrently.
            unsafe { std::env::set_var(var, value) };
            var
        })
        .collect();
    let topology = Topology::builder()
        .with_cpu_cache_type_filter(TypeFilter::KeepNone)
        .and_then(|b| b.with_cpu_icache_type_filter(TypeFilter::KeepNone))
        .map_err(|e| e.to_string())
        .and_then(|b| {
            b.build()
                .map_err(|e| format!("cannot load the hardware topology: {e}"))
        });
    for var in set {
        // SAFETY: as above; the ranks must not inherit these.
        unsafe { std::env::remove_var(var) };
    }
    Ok(cores_of(&topology?, allowed))
}

/// The cores of `topology` restricted to the PUs in `allowed`.
pub fn cores_of(topology: &Topology, allowed: &[usize]) -> Vec<Core> {
    let mut cores: Vec<Core> = topology
        .objects_with_type(ObjectType::Core)
        .filter_map(|core| {
            let cpuset = core.cpuset()?;
            let pus: Vec<usize> = cpuset
                .iter_set()
                .map(usize::from)
                .filter(|pu| allowed.contains(pu))
                .collect();
            (!pus.is_empty()).then(|| Core {
                index: core.logical_index(),
                pus,
            })
        })
        .collect();
    if cores.is_empty() {
        // No Core objects (some virtual machines): every PU counts as a core.
        cores = topology
            .objects_with_type(ObjectType::PU)
            .filter_map(|pu| {
                let os = pu.os_index()?;
                allowed.contains(&os).then(|| Core {
                    index: pu.logical_index(),
                    pus: vec![os],
                })
            })
            .collect();
    }
    cores
}

fn cpu_set(pus: &[usize]) -> libc::cpu_set_t {
    // SAFETY: cpu_set_t is plain data, all-zero is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &pu in pus.iter().filter(|&&pu| pu < libc::CPU_SETSIZE as usize) {
        // SAFETY: CPU_SET writes one bit of `set`; `pu` is below CPU_SETSIZE.
        unsafe { libc::CPU_SET(pu, &mut set) };
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synthetic(desc: &str) -> Topology {
        Topology::builder()
            .from_synthetic(desc)
            .unwrap()
            .build()
            .unwrap()
    }

    #[test]
    fn cores_from_a_synthetic_topology() {
        let topo = synthetic("package:2 core:2 pu:2");
        let all: Vec<usize> = (0..8).collect();
        let cores = cores_of(&topo, &all);
        assert_eq!(cores.len(), 4);
        assert_eq!(
            cores[1],
            Core {
                index: 1,
                pus: vec![2, 3]
            }
        );
        // Restricted affinity: PUs 1 and 4 only.
        let cores = cores_of(&topo, &[1, 4]);
        assert_eq!(
            cores,
            vec![
                Core {
                    index: 0,
                    pus: vec![1]
                },
                Core {
                    index: 2,
                    pus: vec![4]
                }
            ]
        );
    }

    fn two_cores() -> Vec<Core> {
        vec![
            Core {
                index: 0,
                pus: vec![0],
            },
            Core {
                index: 1,
                pus: vec![1],
            },
        ]
    }

    #[test]
    fn default_binds_when_ranks_fit() {
        let cores = two_cores();
        let p = plan(2, None, Some(&cores), 2);
        assert!(!p.oversubscribed);
        assert_eq!(p.bindings[1].env_value(), "core:1");
        assert_eq!(
            p.bindings[1].report(1),
            "[oxrun] rank 1 bound to core 1 (PUs 1)"
        );
        let set = p.bindings[1].cpuset().unwrap();
        // SAFETY: reading bits of an initialised set.
        let (one, zero) = unsafe { (libc::CPU_ISSET(1, &set), libc::CPU_ISSET(0, &set)) };
        assert!(one && !zero);
    }

    #[test]
    fn oversubscribed_ranks_share_cores_round_robin() {
        let cores = two_cores();
        for requested in [None, Some(BindTo::Core)] {
            let p = plan(5, requested, Some(&cores), 2);
            assert!(p.oversubscribed);
            let on: Vec<String> = p.bindings.iter().map(Binding::env_value).collect();
            assert_eq!(on, ["core:0", "core:1", "core:0", "core:1", "core:0"]);
            assert_eq!(
                p.bindings[3].report(3),
                "[oxrun] rank 3 bound to core 1 (PUs 1)"
            );
        }
        // Without a topology nothing is bound; the PU count still tells.
        let p = plan(3, None, None, 2);
        assert!(p.oversubscribed);
        assert_eq!(
            p.bindings[2].report(2),
            "[oxrun] rank 2 not bound (hardware topology unavailable)"
        );
    }

    #[test]
    fn none_is_none() {
        let cores = two_cores();
        let p = plan(2, Some(BindTo::None), Some(&cores), 2);
        assert!(!p.oversubscribed);
        assert_eq!(
            p.bindings[0].report(0),
            "[oxrun] rank 0 not bound (--bind-to none)"
        );
        assert!(plan(4, Some(BindTo::None), None, 2).oversubscribed);
        // Unbound ranks count PUs, with the topology loaded (for --report-bindings)
        // or not: 4 ranks on 2 cores of 2 PUs each fit.
        let smt = [
            Core {
                index: 0,
                pus: vec![0, 2],
            },
            Core {
                index: 1,
                pus: vec![1, 3],
            },
        ];
        assert!(!plan(4, Some(BindTo::None), Some(&smt), 4).oversubscribed);
        assert!(!plan(4, Some(BindTo::None), None, 4).oversubscribed);
        assert!(plan(4, None, Some(&smt), 4).oversubscribed);
    }

    #[test]
    fn topology_only_when_needed() {
        assert!(!needs_topology(Some(BindTo::None), false));
        assert!(needs_topology(None, false));
        assert!(needs_topology(Some(BindTo::Core), false));
        assert!(needs_topology(Some(BindTo::None), true));
    }
}
