fn main() {
    berth::fault::arm();
    // A user without root: into the user's namespace before any thread.
    if let Err(e) = berth::rootless::enter() {
        eprintln!("berth: {e}");
        std::process::exit(125);
    }
    let args: Vec<String> = std::env::args().collect();
    // berth's own processes enter here, not through the command line: no
    // clap, no logging set-up, so that they start fast. The monitor and
    // the exec helper normally run from the small berth-monitor binary;
    // these are for an install without it.
    let code = match args.get(1).map(String::as_str) {
        Some("monitor" | "enter") => berth::runtime::helper::main(&args),
        Some("agent") => berth::engine::agent::main(),
        Some("supervise") => berth::engine::supervisor::main(args.get(2).map(String::as_str).unwrap_or("")),
        Some("delay-line") => berth::network::impair::delay_line_main(&berth::store::Paths::from_env(None), &args[2..]),
        _ => berth::cli::main(),
    };
    std::process::exit(code);
}
