//! `berth events`: what happened to containers, images, networks, volumes
//! and services, from every berth process of a root (CLI, scripts, monitors).
//!
//! The record is a JSON-lines file under the root. Each event is one
//! `write` to a file opened with O_APPEND, so lines from concurrent
//! processes never interleave; readers need no lock, and following is
//! reading on from an offset. Past 8 MiB the file is renamed to
//! `events.jsonl.1` (the one before is dropped), so the record holds the
//! latest 8 to 16 MiB, tens of thousands of events.

use std::collections::BTreeMap;
use std::io::{Read, Seek, Write};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::store::Paths;

const ROTATE_AT: u64 = 8 << 20;

/// One event, in the Docker Engine API's shape.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    #[serde(rename = "Type")]
    pub typ: String,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: Actor,
    pub scope: String,
    pub time: i64,
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Actor {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
}

fn file(paths: &Paths) -> PathBuf {
    paths.root.join("events.jsonl")
}

/// Records an event. Never fails the operation it reports: a record that
/// cannot be written is logged and dropped.
pub fn emit(paths: &Paths, typ: &str, action: &str, id: &str, attributes: BTreeMap<String, String>) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let e = Event {
        typ: typ.to_string(),
        action: action.to_string(),
        actor: Actor { id: id.to_string(), attributes },
        scope: "local".into(),
        time: now.as_secs() as i64,
        time_nano: now.as_nanos() as i64,
    };
    let mut line = match serde_json::to_vec(&e) {
        Ok(l) => l,
        Err(_) => return,
    };
    line.push(b'\n');
    let path = file(paths);
    let r = std::fs::OpenOptions::new().create(true).append(true).open(&path).and_then(|mut f| {
        f.write_all(&line)?;
        if f.metadata()?.len() > ROTATE_AT {
            std::fs::rename(&path, path.with_extension("jsonl.1"))?;
        }
        Ok(())
    });
    if let Err(err) = r {
        tracing::warn!("recording the {typ} {action} event of {id}: {err}");
    }
}

/// Records a container's event with docker's attributes: its labels, name
/// and image, and `extra` (exitCode, signal, ...).
pub fn container(paths: &Paths, c: &crate::container::Container, action: &str, extra: &[(&str, String)]) {
    let mut a: BTreeMap<String, String> = c.spec.labels.clone();
    a.insert("name".into(), c.name.clone());
    a.insert("image".into(), c.image_ref.clone());
    for (k, v) in extra {
        a.insert(k.to_string(), v.clone());
    }
    emit(paths, "container", action, &c.id, a);
}

/// What `--filter` and the script's `filter` select; every kind given must
/// match (several values of one kind: any of them).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub by: BTreeMap<String, Vec<String>>,
}

impl Filter {
    /// `type=container`, `event=start`, `container=NAME|ID`, `image=`,
    /// `network=`, `volume=`, `service=`, `label=K[=V]`.
    pub fn add(&mut self, spec: &str) -> Result<(), String> {
        let (k, v) = spec.split_once('=').ok_or_else(|| format!("invalid filter {spec:?}: expected KEY=VALUE (type, event, container, image, network, volume, service, label)"))?;
        let k = if k == "action" { "event" } else { k };
        if !matches!(k, "type" | "event" | "container" | "image" | "network" | "volume" | "service" | "label") {
            return Err(format!("invalid filter {k:?}: events take type, event, container, image, network, volume, service and label"));
        }
        self.by.entry(k.to_string()).or_default().push(v.to_string());
        Ok(())
    }

    pub fn matches(&self, e: &Event) -> bool {
        self.by.iter().all(|(k, vs)| {
            vs.iter().any(|v| match k.as_str() {
                "type" => e.typ == *v,
                "event" => e.action == *v || e.action.split(':').next() == Some(v.as_str()),
                "label" => match v.split_once('=') {
                    Some((lk, lv)) => e.actor.attributes.get(lk).map(String::as_str) == Some(lv),
                    None => e.actor.attributes.contains_key(v.as_str()),
                },
                kind => e.typ == kind && (e.actor.id.starts_with(v.as_str()) && v.len() >= 12 || e.actor.id == *v || e.actor.attributes.get("name") == Some(v)),
            })
        })
    }
}

/// A point in time as docker's --since and --until take it: a Unix time
/// (`1700000000`, `1700000000.5`), an RFC 3339 time, or a duration before
/// now (`10m`, `1h30m`). Seconds since the epoch.
pub fn parse_time(s: &str) -> Result<f64, String> {
    if s == "now" {
        return Ok(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64());
    }
    if let Ok(t) = s.parse::<f64>() {
        return Ok(t);
    }
    if let Some(t) = crate::store::parse_rfc3339(s) {
        return Ok(t);
    }
    match crate::parse::duration(s, None) {
        Ok(d) => Ok(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().saturating_sub(d).as_secs_f64()),
        Err(_) => Err(format!("invalid time {s:?}: give a Unix time (1700000000), an RFC 3339 time (2026-12-03T18:00:00Z) or a duration before now (10m)")),
    }
}

fn nano(t: f64) -> i64 {
    (t * 1e9) as i64
}

/// The recorded events between `since` and `until` (seconds since the
/// epoch) that pass the filter, oldest first.
pub fn recorded(paths: &Paths, since: Option<f64>, until: Option<f64>, f: &Filter) -> Vec<Event> {
    let mut out = Vec::new();
    for p in [file(paths).with_extension("jsonl.1"), file(paths)] {
        let Ok(text) = std::fs::read_to_string(&p) else { continue };
        for l in text.lines() {
            let Ok(e) = serde_json::from_str::<Event>(l) else { continue };
            if since.is_some_and(|s| e.time_nano < nano(s)) || until.is_some_and(|u| e.time_nano > nano(u)) {
                continue;
            }
            if f.matches(&e) {
                out.push(e);
            }
        }
    }
    out
}

/// Calls `each` for every event recorded from now on that passes the
/// filter, until `until` (or forever, or until `each` returns false).
pub fn follow(paths: &Paths, until: Option<f64>, f: &Filter, mut each: impl FnMut(&Event) -> bool) {
    follow_ticking(paths, until, f, |e| e.is_none_or(&mut each))
}

/// `follow`, with `each` also called with None at every poll (10 a
/// second), so a follower whose reader went away stops though no event
/// comes.
pub fn follow_ticking(paths: &Paths, until: Option<f64>, f: &Filter, mut each: impl FnMut(Option<&Event>) -> bool) {
    let path = file(paths);
    let mut pos = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let mut pending = Vec::new();
    loop {
        if until.is_some_and(|u| SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64() >= u) {
            return;
        }
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        // Rotated under us: the rest of the old file, then the new one.
        if len < pos {
            pos = 0;
        }
        if len > pos
            && let Ok(mut fh) = std::fs::File::open(&path)
            && fh.seek(std::io::SeekFrom::Start(pos)).is_ok()
        {
            let mut buf = Vec::new();
            if let Ok(n) = fh.read_to_end(&mut buf) {
                pos += n as u64;
                pending.extend_from_slice(&buf);
            }
        }
        while let Some(i) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=i).collect();
            if let Ok(e) = serde_json::from_slice::<Event>(&line)
                && until.is_none_or(|u| e.time_nano <= nano(u))
                && f.matches(&e)
                && !each(Some(&e))
            {
                return;
            }
        }
        if !each(None) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// docker's line: `2026-12-03T18:00:00.123456789Z container start ID (image=busybox, name=web)`.
pub fn line(e: &Event) -> String {
    let ts = crate::store::rfc3339(e.time_nano.div_euclid(1_000_000_000), e.time_nano.rem_euclid(1_000_000_000) as u32);
    let attrs: Vec<String> = e.actor.attributes.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if attrs.is_empty() { format!("{ts} {} {} {}", e.typ, e.action, e.actor.id) } else { format!("{ts} {} {} {} ({})", e.typ, e.action, e.actor.id, attrs.join(", ")) }
}

/// docker's JSON: the API's fields plus the old status/id/from.
pub fn json(e: &Event) -> serde_json::Value {
    let mut v = serde_json::to_value(e).unwrap_or_default();
    if e.typ == "container" {
        v["status"] = e.action.clone().into();
        v["id"] = e.actor.id.clone().into();
        v["from"] = e.actor.attributes.get("image").cloned().unwrap_or_default().into();
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(typ: &str, action: &str, id: &str, name: &str) -> Event {
        Event { typ: typ.into(), action: action.into(), actor: Actor { id: id.into(), attributes: [("name".to_string(), name.to_string())].into() }, scope: "local".into(), time: 1, time_nano: 1_000_000_000 }
    }

    #[test]
    fn filters_and_times() {
        let mut f = Filter::default();
        f.add("type=container").unwrap();
        f.add("event=start").unwrap();
        f.add("event=die").unwrap();
        assert!(f.matches(&ev("container", "start", "abc", "web")));
        assert!(f.matches(&ev("container", "die", "abc", "web")));
        assert!(!f.matches(&ev("container", "create", "abc", "web")));
        assert!(!f.matches(&ev("network", "start", "abc", "web")));
        let mut g = Filter::default();
        g.add("container=web").unwrap();
        assert!(g.matches(&ev("container", "create", "abc", "web")) && !g.matches(&ev("container", "create", "abd", "db")));
        assert!(Filter::default().add("colour=red").unwrap_err().contains("type, event"));
        assert!(Filter::default().add("nonsense").unwrap_err().contains("KEY=VALUE"));
        assert_eq!(parse_time("1700000000").unwrap(), 1_700_000_000.0);
        assert_eq!(parse_time("2023-11-14T22:13:20Z").unwrap(), 1_700_000_000.0);
        assert!(parse_time("10m").unwrap() < SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64() - 590.0);
        assert!(parse_time("yesterday").unwrap_err().contains("RFC 3339"));
        assert!(line(&ev("container", "start", "abc", "web")).ends_with("container start abc (name=web)"));
    }
}
