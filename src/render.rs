//! Docker-style tables and human-readable figures, shared by the CLI and
//! the REPL's printing of engine objects.

use crate::container::Container;
use crate::image::Image;
use crate::store;

/// Left-aligned columns separated by at least three spaces, as docker prints.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < w.len() {
                w[i] = w[i].max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let n = cells.len();
        for (i, c) in cells.into_iter().enumerate() {
            out.push_str(c);
            if i + 1 < n {
                out.push_str(&" ".repeat(w[i] - c.chars().count() + 3));
            }
        }
        out.push('\n');
    };
    line(header.to_vec(), &mut out);
    for r in rows {
        line(r.iter().map(|s| s.as_str()).collect(), &mut out);
    }
    out
}

pub fn human_size(b: u64) -> String {
    let b = b as f64;
    if b < 1000.0 {
        return format!("{b}B");
    }
    for (i, u) in ["kB", "MB", "GB", "TB"].iter().enumerate() {
        let v = b / 1000f64.powi(i as i32 + 1);
        if v < 1000.0 {
            return if v < 10.0 { format!("{v:.2}{u}") } else if v < 100.0 { format!("{v:.1}{u}") } else { format!("{v:.0}{u}") };
        }
    }
    format!("{b}B")
}

/// "5 seconds", "About a minute", "3 hours": docker's units.
pub fn human_duration(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match s {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        2..=59 => format!("{s} seconds"),
        60..=119 => "About a minute".into(),
        120..=3599 => format!("{} minutes", s / 60),
        3600..=7199 => "About an hour".into(),
        7200..=172799 => format!("{} hours", s / 3600),
        _ => format!("{} days", s / 86400),
    }
}

fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

pub fn ago(ts: &str) -> String {
    match store::parse_rfc3339(ts) {
        Some(t) => format!("{} ago", human_duration(now() - t)),
        None => String::new(),
    }
}

pub fn status(c: &Container) -> String {
    let since = |ts: &str| store::parse_rfc3339(ts).map(|t| human_duration(now() - t)).unwrap_or_default();
    match c.state.as_str() {
        // As docker: "Up 5 seconds (healthy)", "(health: starting)".
        "running" if c.health.status == "starting" => format!("Up {} (health: starting)", since(&c.started_at)),
        "running" if !c.health.status.is_empty() => format!("Up {} ({})", since(&c.started_at), c.health.status),
        "running" => format!("Up {}", since(&c.started_at)),
        "paused" => format!("Up {} (Paused)", since(&c.started_at)),
        "restarting" => format!("Restarting ({}) {} ago", c.exit_code, since(&c.finished_at)),
        "exited" if c.finished_at.is_empty() => "Created".into(),
        "exited" => format!("Exited ({}) {} ago", c.exit_code, since(&c.finished_at)),
        "created" => "Created".into(),
        other => other.to_string(),
    }
}

fn quote_cmd(c: &Container) -> String {
    let s = c.command.join(" ");
    let s = if s.chars().count() > 20 { format!("{}…", s.chars().take(19).collect::<String>()) } else { s };
    format!("\"{s}\"")
}

/// docker's PORTS column: `0.0.0.0:18081->80/tcp, 127.0.0.1:5353->53/udp`.
pub fn ports(list: &[crate::network::Published]) -> String {
    list.iter().map(|p| format!("{}:{}->{}/{}", p.host_ip, p.host_port, p.container_port, p.proto)).collect::<Vec<_>>().join(", ")
}

/// `ports` gives each container's PORTS cell (the engine knows them).
pub fn containers(list: &[Container], ports: impl Fn(&Container) -> String) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|c| vec![c.short_id().to_string(), c.image_ref.clone(), quote_cmd(c), ago(&c.created), status(c), ports(c), c.name.clone()])
        .collect();
    render(&["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"], &rows)
}

pub fn images(list: &[Image]) -> String {
    let mut rows = Vec::new();
    for i in list {
        let tags: Vec<(String, String)> = if i.tags.is_empty() {
            vec![("<none>".into(), "<none>".into())]
        } else {
            i.tags.iter().map(|t| {
                let (r, tag) = t.rsplit_once(':').unwrap_or((t, "latest"));
                (r.to_string(), tag.to_string())
            }).collect()
        };
        for (r, t) in tags {
            rows.push(vec![r, t, i.short_id().to_string(), ago(&i.created), human_size(i.size)]);
        }
    }
    render(&["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], &rows)
}

/// `berth network ls`.
pub fn networks(list: &[crate::network::Network]) -> String {
    let rows: Vec<Vec<String>> = list.iter().map(|n| vec![n.id.chars().take(12).collect(), n.name.clone(), n.driver.clone(), if n.is_overlay() { "swarm".into() } else { "local".into() }, n.subnet.clone()]).collect();
    render(&["NETWORK ID", "NAME", "DRIVER", "SCOPE", "SUBNET"], &rows)
}

/// `berth volume ls`.
pub fn volumes(list: &[crate::volume::Volume]) -> String {
    let rows: Vec<Vec<String>> = list.iter().map(|v| vec!["local".into(), v.name.clone()]).collect();
    render(&["DRIVER", "VOLUME NAME"], &rows)
}

/// `berth service ls`: each service with how many of its replicas serve.
pub fn services(list: &[(crate::service::Service, usize)]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|(s, serving)| {
            vec![s.id.chars().take(12).collect(), s.name.clone(), "replicated".into(), format!("{serving}/{}", s.spec.replicas), s.spec.template.image.clone(), s.vip.to_string(), s.spec.publish.join(", ")]
        })
        .collect();
    render(&["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "VIP", "PORTS"], &rows)
}

/// `top`'s columns, those of `ps -ef` (docker's default).
pub const TOP_TITLES: [&str; 8] = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"];

/// `top`'s rows: user, pids, start time and cpu time as ps prints them.
pub fn top_rows(procs: &[crate::engine::ProcInfo]) -> Vec<Vec<String>> {
    let hz = 100.0;
    let boot = boot_time();
    procs
        .iter()
        .map(|p| {
            let start = boot + p.start_ticks as f64 / hz;
            let st = store::rfc3339(start as i64, 0);
            let t = p.cpu_ticks / 100;
            vec![uid_name(p.uid), p.pid.to_string(), p.ppid.to_string(), "0".into(), st[11..16].to_string(), p.tty.clone(), format!("{:02}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60), p.cmd.clone()]
        })
        .collect()
}

fn boot_time() -> f64 {
    std::fs::read_to_string("/proc/stat").ok().and_then(|s| s.lines().find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())).unwrap_or(0.0)
}

fn uid_name(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| {
            p.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_string())
            })
        })
        .unwrap_or_else(|| uid.to_string())
}
