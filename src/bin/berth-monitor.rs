//! berth's small binary for the processes that live beside a container
//! or enter one: the monitor and the exec helper (see
//! `berth::runtime::helper`). It links the runtime and the store only, so
//! each monitor maps a few MB of code rather than berth's 30.

fn main() {
    berth::fault::arm();
    // A no-op inside the user's namespace, where berth starts us.
    if let Err(e) = berth::rootless::enter() {
        eprintln!("berth: {e}");
        std::process::exit(125);
    }
    let args: Vec<String> = std::env::args().collect();
    std::process::exit(berth::runtime::helper::main(&args));
}
