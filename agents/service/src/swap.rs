//! Removing many reals from a service under rr, for schedulers that pay
//! per removal, and the swap file that tells the service agent's monitor
//! why its scheduler reads rr meanwhile.

use lvs_ipvs::{Family, ServiceKey};

/// Schedulers whose kernel code walks all of a service's destinations at
/// every addition, edit and removal (wrr: the gcd and maximum weight; mh:
/// its lookup table), so that removing n reals costs O(n^2): 65,536 under
/// wrr took 396 s of kernel time in the emulated lab VM.
const PAYS_PER_REMOVAL: [&str; 2] = ["wrr", "mh"];

/// Removals from one service past which they run under rr (see
/// [`removing_many`]); below, the O(n^2) is small (1,024 under wrr: about
/// a tenth of a second in the lab VM).
pub const SWAP_SCHEDULER_FROM: usize = 1024;

/// What the swap file says: the scheduler put aside and who did it.
#[derive(serde::Serialize, serde::Deserialize)]
struct Swap {
    scheduler: String,
    pid: u32,
}

/// Where the swap file of `key`'s service is (tests write one).
pub fn swap_path(key: &ServiceKey) -> std::path::PathBuf {
    swap_file(key).1
}

/// The swap file of `key`'s service, next to the agents' other files.
fn swap_file(key: &ServiceKey) -> (lvs_daemon::Instance, std::path::PathBuf) {
    let name = format!("{key}{}", if key.family() == Family::Inet6 { "/inet6" } else { "" });
    let instance = lvs_daemon::Instance::new("scheduler", &name);
    let path = instance.recordfile();
    (instance, path)
}

/// Runs `remove` (about `count` removals from `key`'s service) with the
/// service's scheduler set to rr when its own pays per removal and the
/// count is large, then puts the scheduler (flags, persistence and all)
/// back, whatever `remove` returned. Meanwhile a swap file says so and
/// [`swapped_out`] reads it, so the service agent's monitor takes rr for
/// the real scheduler while this process lives. Traffic to the service's
/// other destinations is scheduled rr for those seconds.
pub fn removing_many<T>(
    ipvs: &dyn lvs_ipvs::Ipvs,
    key: &ServiceKey,
    count: usize,
    remove: impl FnOnce() -> lvs_ipvs::Result<T>,
) -> lvs_ipvs::Result<T> {
    use lvs_ipvs::ServiceFlags;
    if count < SWAP_SCHEDULER_FROM {
        return remove();
    }
    let svc = match ipvs.service(key) {
        Ok(s) if PAYS_PER_REMOVAL.contains(&s.scheduler.as_str()) => s,
        Ok(_) => return remove(),
        Err(e) if e.is_not_found() => return remove(),
        Err(e) => return Err(e),
    };
    let (instance, path) = swap_file(key);
    // No swap file, no swap: the service agent's monitor must never see rr
    // unexplained.
    if let Err(e) = instance.write_json(&path, &Swap { scheduler: svc.scheduler.clone(), pid: std::process::id() }) {
        tracing::warn!("{e}; removing under {}", svc.scheduler);
        return remove();
    }
    let mut rr = svc.clone();
    rr.scheduler = "rr".into();
    rr.flags = rr.flags.without(ServiceFlags::SCHED_MASK);
    if let Err(e) = ipvs.edit_service(&rr) {
        let _ = std::fs::remove_file(&path);
        tracing::warn!("{e}; removing under {}", svc.scheduler);
        return remove();
    }
    tracing::info!(
        "removing {count} reals from {key} under rr ({} pays per removal), then {} again",
        svc.scheduler,
        svc.scheduler
    );
    let removed = remove();
    let restored = ipvs.edit_service(&svc);
    let _ = std::fs::remove_file(&path);
    match restored {
        Err(e) if !e.is_not_found() => Err(e),
        _ => removed,
    }
}

/// The scheduler a live [`removing_many`] has put aside on `key`'s
/// service, if any.
pub fn swapped_out(key: &ServiceKey) -> Option<String> {
    let (instance, path) = swap_file(key);
    let (swap, _) = instance.read_json::<Swap>(&path).ok()??;
    let pid = nix::unistd::Pid::from_raw(i32::try_from(swap.pid).ok()?);
    nix::sys::signal::kill(pid, None).is_ok().then_some(swap.scheduler)
}
