#![no_main]
//! `inspect -f` / `--format` templates. The input is the template, or
//! `TEMPLATE\0JSON` to render against a value of the fuzzer's own; the
//! default value has the nesting, arrays and dotted label keys that real
//! inspect output has. Any template: a string or an error, never a panic.

use std::sync::OnceLock;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    static INSPECT: OnceLock<serde_json::Value> = OnceLock::new();
    let fixed = INSPECT.get_or_init(|| {
        serde_json::json!({
            "Id": "0123456789ab", "Name": "/web",
            "State": {"Status": "running", "Pid": 7, "Running": true, "ExitCode": 0, "Health": null},
            "Config": {"Labels": {"a.b": "x", "com.example": ""}, "Env": ["A=1", "B=2"], "Cmd": null},
            "Mounts": [{"Destination": "/data", "RW": true}],
            "NetworkSettings": {"Networks": {"bridge": {"IPAddress": "10.0.0.2"}}, "Ports": {"80/tcp": [{"HostPort": "8080"}]}},
            "Size": 1.5e3,
        })
    });
    let Ok(s) = std::str::from_utf8(data) else { return };
    let own;
    let (tpl, v) = match s.split_once('\0') {
        Some((t, j)) => match serde_json::from_str(j) {
            Ok(j) => {
                own = j;
                (t, &own)
            }
            Err(_) => (t, fixed),
        },
        None => (s, fixed),
    };
    let _ = berth::cli::format_template(tpl, v);
});
