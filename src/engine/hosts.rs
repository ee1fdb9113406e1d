//! Lab hosts (cluster/hosts.rs) through the engine: what the `lab hosts`
//! commands and `lab::hosts` in scripts use.

use super::{Engine, EngineError, Output, Result};
use crate::cluster::hosts::{self, LabHost};

impl Engine {
    /// Makes `n` hosts for `lab` and loads `images` from this root into
    /// each, so they can run them without a registry.
    pub fn lab_hosts_create(&self, lab: &str, n: u32, images: &[String], swarm: bool) -> Result<Vec<LabHost>> {
        for i in images {
            self.image(i).map_err(super::chain(format!("lab hosts {lab}: image {i} for the hosts")))?;
        }
        let fresh = hosts::list(&self.paths, lab).is_empty();
        let hs = hosts::create(&self.paths, lab, n).map_err(EngineError::Other)?;
        if fresh && !images.is_empty() {
            if let Err(e) = self.load_into(lab, &hs, images) {
                let _ = hosts::down(&self.paths, lab);
                return Err(e);
            }
        }
        if fresh && swarm && let Err(e) = self.lab_swarm(&hs) {
            let _ = hosts::down(&self.paths, lab);
            return Err(e);
        }
        Ok(hs)
    }

    /// The hosts form a swarm: the first inits it, the next two join as
    /// managers (a 3-member etcd), the rest as workers.
    fn lab_swarm(&self, hs: &[LabHost]) -> Result<()> {
        let run = |h: &LabHost, args: &[&str]| -> Result<String> {
            let mut argv = vec!["berth".to_string()];
            argv.extend(args.iter().map(|s| s.to_string()));
            let o = self.lab_host_run(h, &argv)?;
            if o.code != 0 {
                return Err(EngineError::Other(format!("host {}: berth {}: {}", h.name, args.join(" "), String::from_utf8_lossy(&o.stderr).trim())));
            }
            Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
        };
        let Some(first) = hs.first() else { return Ok(()) };
        let addr0 = first.addr.to_string();
        run(first, &["swarm", "init", "--advertise-addr", &addr0, "--name", &first.name])?;
        let manager = run(first, &["swarm", "join-token", "manager"])?;
        let worker = run(first, &["swarm", "join-token", "worker"])?;
        for (i, h) in hs.iter().enumerate().skip(1) {
            let token = if i < 3 { &manager } else { &worker };
            let addr = h.addr.to_string();
            run(h, &["swarm", "join", "--token", token, "--advertise-addr", &addr, "--name", &h.name, &addr0])?;
        }
        Ok(())
    }

    fn load_into(&self, lab: &str, hs: &[LabHost], images: &[String]) -> Result<()> {
        let tar = self.paths.tmp().join(format!("lab-{lab}-images.tar"));
        let mut f = std::fs::File::create(&tar).map_err(|e| EngineError::Other(format!("lab hosts {lab}: {}: {e}", tar.display())))?;
        let saved = self.save(images, &mut f, crate::image::archive::Format::Docker);
        drop(f);
        let r = saved.and_then(|_| {
            let results: Vec<Result<()>> = std::thread::scope(|sc| {
                let hs: Vec<_> = hs
                    .iter()
                    .map(|h| {
                        let tar = &tar;
                        sc.spawn(move || {
                            let o = self.lab_host_run(h, &["berth".into(), "load".into(), "-q".into(), "-i".into(), tar.display().to_string()])?;
                            if o.code == 0 { Ok(()) } else { Err(EngineError::Other(format!("lab hosts {lab}: loading images into {}: {}", h.name, String::from_utf8_lossy(&o.stderr).trim()))) }
                        })
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(EngineError::Other("image load panicked".into())))).collect()
            });
            results.into_iter().collect::<Result<Vec<()>>>().map(|_| ())
        });
        let _ = std::fs::remove_file(&tar);
        r
    }

    pub fn lab_hosts(&self, lab: &str) -> Vec<LabHost> {
        hosts::list(&self.paths, lab)
    }

    pub fn lab_host(&self, lab: &str, host: &str) -> Result<LabHost> {
        let hs = hosts::list(&self.paths, lab);
        if hs.is_empty() {
            return Err(EngineError::Other(format!("no such lab: {lab} (it has no hosts; make them with lab::hosts or berth lab hosts {lab} N)")));
        }
        let names: Vec<String> = hs.iter().map(|h| h.name.clone()).collect();
        hs.into_iter()
            .find(|h| h.name == host || h.index.to_string() == host || format!("h{}", h.index) == host)
            .ok_or_else(|| EngineError::Other(format!("lab {lab} has no host {host} (hosts: {})", names.join(", "))))
    }

    pub fn labs(&self) -> Vec<String> {
        hosts::labs(&self.paths)
    }

    pub fn lab_down(&self, lab: &str) -> Result<usize> {
        hosts::down(&self.paths, lab).map_err(EngineError::Other)
    }

    /// Runs `argv` in host `h` (`berth` as the program: berth in that
    /// host's root) and collects its output.
    pub fn lab_host_run(&self, h: &LabHost, argv: &[String]) -> Result<Output> {
        if argv.is_empty() {
            return Err(EngineError::Other(format!("host {}: no command given", h.name)));
        }
        let mut cmd = h.command(argv).map_err(|e| EngineError::Other(format!("host {}: {e}", h.name)))?;
        let o = cmd.stdin(std::process::Stdio::null()).output().map_err(|e| EngineError::Other(format!("host {}: running {}: {e}", h.name, argv[0])))?;
        Ok(Output { code: o.status.code().unwrap_or(128 + std::os::unix::process::ExitStatusExt::signal(&o.status).unwrap_or(0)), stdout: o.stdout, stderr: o.stderr })
    }
}
