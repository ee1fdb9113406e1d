fn main() {
    berth::fault::arm();
    let args: Vec<String> = std::env::args().collect();
    // berth's own processes enter here, not through the command line: no
    // clap, no logging set-up, so that they start fast.
    let code = match args.get(1).map(String::as_str) {
        Some("monitor") => {
            let paths = berth::store::Paths::from_env(None);
            berth::runtime::monitor::main(paths, args.get(2).map(String::as_str).unwrap_or(""), berth::runtime::monitor::inherited_socket())
        }
        Some("delay-line") => berth::network::impair::delay_line_main(&berth::store::Paths::from_env(None), &args[2..]),
        _ => berth::cli::main(),
    };
    std::process::exit(code);
}
