//! Named fault points: the steps of multi-step operations where the crash
//! tests kill berth, as a power cut or an OOM kill would, to prove that what
//! is left is found by `system check` and removed by `--repair`.
//!
//! `BERTH_FAULT=run.cgroup` (names separated by commas; `name@N` for the
//! N-th time the point is reached) arms the points for this process and
//! the berth processes it starts; reaching an armed point sends SIGKILL to
//! the process itself. The points come from the fail crate and exist only
//! with the `faults` feature, which release builds leave out.

/// Marks a fault point. The name is `operation.step`.
#[macro_export]
macro_rules! fault {
    ($name:literal) => {
        #[cfg(feature = "faults")]
        ::fail::fail_point!($name);
    };
}

/// Arms the points `BERTH_FAULT` names. Called once, first thing, by every
/// berth process.
pub fn arm() {
    #[cfg(feature = "faults")]
    if let Ok(v) = std::env::var("BERTH_FAULT") {
        for spec in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, nth) = match spec.split_once('@') {
                Some((n, k)) => (n.to_string(), k.parse::<usize>().unwrap_or(1)),
                None => (spec.to_string(), 1),
            };
            let seen = std::sync::atomic::AtomicUsize::new(0);
            let label = name.clone();
            let armed = fail::cfg_callback(name, move || {
                if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == nth {
                    crash(&label)
                }
            });
            if let Err(e) = armed {
                eprintln!("berth: BERTH_FAULT {spec:?}: {e}");
            }
        }
    }
}

#[cfg(feature = "faults")]
fn crash(name: &str) {
    // Said on stderr so a test can tell the point was reached, not skipped.
    eprintln!("berth: fault point {name}: killed");
    let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
}
