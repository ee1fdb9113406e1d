fn main() {
    berth::fault::arm();
    // A user without root: into the user's namespace before any thread.
    if let Err(e) = berth::rootless::enter() {
        eprintln!("berth: {e}");
        std::process::exit(125);
    }
    let args: Vec<String> = std::env::args().collect();
    // berth's own processes enter here, not through the command line: no
    // clap, no logging set-up, so that they start fast.
    // `berth exec` forks into the container: re-run it from a read-only
    // view of this binary before doing anything else, so the cost is one
    // bare start-up (runtime::exec checks again for other ways in).
    if args.get(1).map(String::as_str) == Some("exec") && !berth::sys::exe::self_is_sealed() {
        // On failure runtime::exec tries once more and reports why.
        let _ = berth::sys::exe::reexec_sealed();
    }
    let code = match args.get(1).map(String::as_str) {
        Some("monitor") => {
            let paths = berth::store::Paths::from_env(None);
            berth::runtime::monitor::main(paths, args.get(2).map(String::as_str).unwrap_or(""), berth::runtime::monitor::inherited_socket())
        }
        Some("agent") => berth::engine::agent::main(),
        Some("supervise") => berth::engine::supervisor::main(args.get(2).map(String::as_str).unwrap_or("")),
        Some("delay-line") => berth::network::impair::delay_line_main(&berth::store::Paths::from_env(None), &args[2..]),
        _ => berth::cli::main(),
    };
    std::process::exit(code);
}
