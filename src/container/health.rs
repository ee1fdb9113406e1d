//! Health checks: what to run (the `health` option, `--health-*` flags or
//! the image's HEALTHCHECK) and the state it leads to. The container's own
//! monitor runs the probes (no daemon), records each result in the store and
//! tells the firewall when a service replica's health changes.

use serde::{Deserialize, Serialize};

/// A health check as docker describes one.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct HealthSpec {
    /// `["CMD", arg...]`, `["CMD-SHELL", text]` or `["NONE"]`.
    pub test: Vec<String>,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub start_period_ms: u64,
    pub retries: u32,
}

pub const DEFAULT_INTERVAL_MS: u64 = 30_000;
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
pub const DEFAULT_RETRIES: u32 = 3;

impl HealthSpec {
    /// The command to exec in the container, or None for no check.
    pub fn argv(&self) -> Option<Vec<String>> {
        match self.test.first().map(String::as_str) {
            Some("CMD") if self.test.len() > 1 => Some(self.test[1..].to_vec()),
            Some("CMD-SHELL") if self.test.len() > 1 => Some(vec!["/bin/sh".into(), "-c".into(), self.test[1..].join(" ")]),
            _ => None,
        }
    }

    pub fn interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(if self.interval_ms == 0 { DEFAULT_INTERVAL_MS } else { self.interval_ms })
    }

    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(if self.timeout_ms == 0 { DEFAULT_TIMEOUT_MS } else { self.timeout_ms })
    }

    pub fn retries(&self) -> u32 {
        if self.retries == 0 { DEFAULT_RETRIES } else { self.retries }
    }

    /// An image config's `Healthcheck` (durations in nanoseconds).
    pub fn from_image(v: &serde_json::Value) -> Option<HealthSpec> {
        let test: Vec<String> = v.get("Test")?.as_array()?.iter().filter_map(|x| x.as_str().map(str::to_string)).collect();
        let ms = |k: &str| v.get(k).and_then(|x| x.as_u64()).unwrap_or(0) / 1_000_000;
        Some(HealthSpec {
            test,
            interval_ms: ms("Interval"),
            timeout_ms: ms("Timeout"),
            start_period_ms: ms("StartPeriod"),
            retries: v.get("Retries").and_then(|x| x.as_u64()).unwrap_or(0) as u32,
        })
    }

    /// As docker's inspect shows it.
    pub fn to_docker(&self) -> serde_json::Value {
        serde_json::json!({
            "Test": self.test,
            "Interval": self.interval().as_nanos() as u64,
            "Timeout": self.timeout().as_nanos() as u64,
            "StartPeriod": self.start_period_ms * 1_000_000,
            "Retries": self.retries(),
        })
    }
}

/// The check that applies: the container's own, else the image's; `NONE`
/// (or `--no-healthcheck`) switches the image's off.
pub fn effective(own: Option<&HealthSpec>, image: Option<&serde_json::Value>) -> Option<HealthSpec> {
    let h = match own {
        // Timings without a command adjust the image's check.
        Some(h) if h.test.is_empty() => {
            let mut i = HealthSpec::from_image(image?)?;
            for (mine, theirs) in [(h.interval_ms, &mut i.interval_ms), (h.timeout_ms, &mut i.timeout_ms), (h.start_period_ms, &mut i.start_period_ms)] {
                if mine != 0 {
                    *theirs = mine;
                }
            }
            if h.retries != 0 {
                i.retries = h.retries;
            }
            i
        }
        Some(h) => h.clone(),
        None => HealthSpec::from_image(image?)?,
    };
    h.argv().is_some().then_some(h)
}

/// One probe's result, kept (the last five) for inspect.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Probe {
    pub start: String,
    pub end: String,
    pub exit_code: i32,
    pub output: String,
}

/// What the store keeps: docker's `State.Health`.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct HealthState {
    /// starting | healthy | unhealthy ("" when there is no check).
    pub status: String,
    pub failing_streak: u32,
    pub log: Vec<Probe>,
}

impl HealthState {
    /// Folds a probe in; returns true when the status changed.
    pub fn record(&mut self, p: Probe, retries: u32, in_start_period: bool) -> bool {
        let before = self.status.clone();
        if p.exit_code == 0 {
            self.status = "healthy".into();
            self.failing_streak = 0;
        } else if !in_start_period || self.status == "healthy" {
            // Failures during the start period do not count, as in docker,
            // unless the container had already been healthy.
            self.failing_streak += 1;
            if self.failing_streak >= retries {
                self.status = "unhealthy".into();
            }
        }
        self.log.push(p);
        if self.log.len() > 5 {
            self.log.remove(0);
        }
        before != self.status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(code: i32) -> Probe {
        Probe { exit_code: code, ..Default::default() }
    }

    #[test]
    fn streaks_turn_unhealthy_after_retries_and_back() {
        let mut h = HealthState { status: "starting".into(), ..Default::default() };
        assert!(!h.record(probe(1), 2, false));
        assert_eq!(h.status, "starting");
        assert!(h.record(probe(1), 2, false));
        assert_eq!(h.status, "unhealthy");
        assert!(h.record(probe(0), 2, false));
        assert_eq!((h.status.as_str(), h.failing_streak), ("healthy", 0));
        for _ in 0..7 {
            h.record(probe(0), 2, false);
        }
        assert_eq!(h.log.len(), 5, "the last five probes are kept");
    }

    #[test]
    fn start_period_failures_do_not_count() {
        let mut h = HealthState { status: "starting".into(), ..Default::default() };
        h.record(probe(1), 1, true);
        assert_eq!((h.status.as_str(), h.failing_streak), ("starting", 0));
        h.record(probe(1), 1, false);
        assert_eq!(h.status, "unhealthy");
    }

    #[test]
    fn the_check_that_applies() {
        let img = serde_json::json!({"Test": ["CMD-SHELL", "test -f /ready"], "Interval": 2_000_000_000u64, "Retries": 4});
        let h = effective(None, Some(&img)).unwrap();
        assert_eq!(h.argv().unwrap(), ["/bin/sh", "-c", "test -f /ready"]);
        assert_eq!((h.interval_ms, h.retries()), (2000, 4));
        let none = HealthSpec { test: vec!["NONE".into()], ..Default::default() };
        assert!(effective(Some(&none), Some(&img)).is_none(), "NONE switches the image's check off");
        assert!(effective(None, None).is_none());
    }
}
