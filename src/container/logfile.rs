//! The container's log on disk: JSON lines, rotated by size as docker's
//! json-file driver does with `--log-opt max-size=10m --log-opt max-file=3`.
//! The monitor writes it; `logs` reads the rotated files oldest first.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The limit a container gets when it names none: 20 MB per file, 5 files.
/// docker's json-file driver keeps everything by default, and a container
/// that prints without pause then fills the disk that holds every other
/// container and the store itself. 20m x 5 is docker's own bounded default
/// (its `local` driver): 100 MB at most per container, which keeps hours of
/// ordinary output for `berth logs`, and five files keep each rotation a
/// handful of renames.
pub const DEFAULT_MAX_SIZE: u64 = 20 << 20;
pub const DEFAULT_MAX_FILE: u32 = 5;

/// The log options a container runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// Bytes per file before it is rotated; None keeps one growing file.
    pub max_size: Option<u64>,
    /// Files kept, the current one included.
    pub max_file: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { max_size: Some(DEFAULT_MAX_SIZE), max_file: DEFAULT_MAX_FILE }
    }
}

/// The annotations of config.json that carry the options to the monitor.
pub const MAX_SIZE_ANNOTATION: &str = "berth.log-max-size";
pub const MAX_FILE_ANNOTATION: &str = "berth.log-max-file";

impl LogConfig {
    /// Reads `--log-opt` pairs (docker's json-file keys); a key left out
    /// keeps its default. `max-size=-1` means no limit, as in docker.
    pub fn from_opts(opts: &BTreeMap<String, String>) -> Result<LogConfig, String> {
        let mut c = LogConfig::default();
        for (k, v) in opts {
            match k.as_str() {
                "max-size" => c.max_size = parse_size(v)?,
                "max-file" => {
                    c.max_file = v.trim().parse().ok().filter(|n| *n >= 1).ok_or_else(|| format!("--log-opt max-file={v:?}: expected a whole number of files, 1 or more"))?;
                }
                other => return Err(format!("unknown log opt {other:?} for the json-file log driver; known: max-size, max-file")),
            }
        }
        Ok(c)
    }

    /// docker's HostConfig.LogConfig.Config: what the container runs with.
    pub fn to_docker(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert("max-size".into(), self.max_size.map(size_text).unwrap_or_else(|| "-1".into()));
        m.insert("max-file".into(), self.max_file.to_string());
        m
    }

    pub fn to_annotations(self, a: &mut BTreeMap<String, String>) {
        a.insert(MAX_SIZE_ANNOTATION.into(), self.max_size.map(|n| n.to_string()).unwrap_or_else(|| "-1".into()));
        a.insert(MAX_FILE_ANNOTATION.into(), self.max_file.to_string());
    }

    /// From config.json; a spec written before log limits existed runs with
    /// the default.
    pub fn from_annotations(a: Option<&std::collections::HashMap<String, String>>) -> LogConfig {
        let d = LogConfig::default();
        let Some(a) = a else { return d };
        let max_size = match a.get(MAX_SIZE_ANNOTATION).map(|s| s.parse::<i64>()) {
            Some(Ok(n)) if n > 0 => Some(n as u64),
            Some(Ok(_)) => None,
            _ => d.max_size,
        };
        let max_file = a.get(MAX_FILE_ANNOTATION).and_then(|s| s.parse().ok()).filter(|n| *n >= 1).unwrap_or(d.max_file);
        LogConfig { max_size, max_file }
    }
}

/// docker's size units for max-size: k, m, g (powers of 1024), b or none.
fn parse_size(v: &str) -> Result<Option<u64>, String> {
    let t = v.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(None);
    }
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    match num.parse::<u64>() {
        Ok(n) if n > 0 => n.checked_mul(mult).map(Some).ok_or_else(|| format!("--log-opt max-size={v:?}: too large")),
        _ => Err(format!("--log-opt max-size={v:?}: expected a size such as 10m (units k, m, g), or -1 for no limit")),
    }
}

fn size_text(n: u64) -> String {
    for (unit, m) in [("g", 1u64 << 30), ("m", 1 << 20), ("k", 1 << 10)] {
        if n % m == 0 {
            return format!("{}{unit}", n / m);
        }
    }
    n.to_string()
}

/// `log.jsonl.N`: the N-th newest rotated file.
fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// The log files of a container, oldest first, that exist now.
pub fn files(path: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = (1..).map(|n| rotated(path, n)).take_while(|p| p.exists()).collect();
    v.reverse();
    v.push(path.to_path_buf());
    v
}

/// The whole log as text, oldest line first. A file rotated away between
/// listing and reading is skipped: its lines are in the next one.
pub fn read_all(path: &Path) -> String {
    files(path).iter().filter_map(|p| std::fs::read_to_string(p).ok()).collect()
}

/// Reads a log as it grows, across rotations: first the rotated files,
/// then the current one; when the monitor renames it away, the rest of the
/// old file and then the new one. It polls, as `logs -f` does: a file
/// rotated twice between two polls (max-size written within 100 ms) is
/// skipped by the follower; `logs` without -f still shows it while kept.
pub struct Follower {
    path: PathBuf,
    backlog: Vec<PathBuf>,
    file: Option<std::fs::File>,
}

impl Follower {
    pub fn open(path: &Path) -> std::io::Result<Follower> {
        let mut backlog = files(path);
        backlog.pop();
        let file = Some(std::fs::File::open(path)?);
        Ok(Follower { path: path.to_path_buf(), backlog, file })
    }

    /// What was written since the last call ("" when nothing was).
    pub fn read_new(&mut self) -> std::io::Result<String> {
        use std::io::Read;
        use std::os::unix::fs::MetadataExt;
        let mut s = String::new();
        for p in std::mem::take(&mut self.backlog) {
            if let Ok(mut f) = std::fs::File::open(&p) {
                f.read_to_string(&mut s)?;
            }
        }
        if let Some(f) = self.file.as_mut() {
            f.read_to_string(&mut s)?;
        }
        if s.is_empty() {
            let now = std::fs::metadata(&self.path).ok().map(|m| (m.dev(), m.ino()));
            let held = self.file.as_ref().and_then(|f| f.metadata().ok()).map(|m| (m.dev(), m.ino()));
            if now.is_some() && now != held {
                // Rotated: finish the old file, then start on the new one.
                if let Some(f) = self.file.as_mut() {
                    f.read_to_string(&mut s)?;
                }
                self.file = std::fs::File::open(&self.path).ok();
            }
        }
        Ok(s)
    }
}

/// The writer the monitor holds: appends records, rotating by size.
pub struct LogWriter {
    path: PathBuf,
    file: std::fs::File,
    size: u64,
    cfg: LogConfig,
}

impl LogWriter {
    pub fn open(path: &Path, cfg: LogConfig) -> std::io::Result<LogWriter> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(LogWriter { path: path.to_path_buf(), file, size, cfg })
    }

    /// Appends one record (a whole line). A record never straddles two
    /// files, so every file stays valid JSON lines.
    pub fn write_record(&mut self, rec: &[u8]) -> std::io::Result<()> {
        if let Some(max) = self.cfg.max_size
            && self.size > 0
            && self.size + rec.len() as u64 > max
        {
            self.rotate()?;
        }
        self.file.write_all(rec)?;
        self.size += rec.len() as u64;
        Ok(())
    }

    /// log.jsonl.(k-1) -> .k down to log.jsonl -> .1, dropping the oldest.
    /// Renames keep `berth logs -f` readers, which hold the old file open,
    /// reading to its end before they move on.
    fn rotate(&mut self) -> std::io::Result<()> {
        let keep = self.cfg.max_file;
        if keep <= 1 {
            // One file: start it over rather than grow past the limit.
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        let _ = std::fs::remove_file(rotated(&self.path, keep - 1));
        for n in (1..keep - 1).rev() {
            let from = rotated(&self.path, n);
            if from.exists() {
                std::fs::rename(&from, rotated(&self.path, n + 1))?;
            }
        }
        std::fs::rename(&self.path, rotated(&self.path, 1))?;
        self.file = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_as_docker_has_them() {
        let o = |kv: &[(&str, &str)]| LogConfig::from_opts(&kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        assert_eq!(o(&[]).unwrap(), LogConfig::default());
        assert_eq!(o(&[("max-size", "10m"), ("max-file", "3")]).unwrap(), LogConfig { max_size: Some(10 << 20), max_file: 3 });
        assert_eq!(o(&[("max-size", "-1")]).unwrap().max_size, None);
        assert_eq!(o(&[("max-size", "512k")]).unwrap().to_docker()["max-size"], "512k");
        assert!(o(&[("max-size", "lots")]).unwrap_err().contains("10m"));
        assert!(o(&[("max-file", "0")]).unwrap_err().contains("1 or more"));
        assert!(o(&[("compress", "true")]).unwrap_err().contains("max-size, max-file"));
    }

    #[test]
    fn annotations_round_trip() {
        for c in [LogConfig::default(), LogConfig { max_size: None, max_file: 1 }, LogConfig { max_size: Some(1 << 20), max_file: 2 }] {
            let mut a = BTreeMap::new();
            c.to_annotations(&mut a);
            let h: std::collections::HashMap<String, String> = a.into_iter().collect();
            assert_eq!(LogConfig::from_annotations(Some(&h)), c);
        }
        assert_eq!(LogConfig::from_annotations(None), LogConfig::default());
    }

    #[test]
    fn rotation_keeps_max_file_files_and_reads_in_order() {
        let dir = std::env::temp_dir().join(format!("berth-logfile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log.jsonl");
        let mut w = LogWriter::open(&path, LogConfig { max_size: Some(100), max_file: 3 }).unwrap();
        for i in 0..100 {
            w.write_record(format!("line {i:04} .........\n").as_bytes()).unwrap();
        }
        let fs = files(&path);
        assert_eq!(fs.len(), 3, "{fs:?}");
        for f in &fs {
            assert!(std::fs::metadata(f).unwrap().len() <= 100);
        }
        let text = read_all(&path);
        let nums: Vec<u32> = text.lines().map(|l| l[5..9].parse().unwrap()).collect();
        assert_eq!(*nums.last().unwrap(), 99);
        assert!(nums.windows(2).all(|w| w[1] == w[0] + 1), "in order, no gap: {nums:?}");
        // Reopening (a restarted monitor) continues the current file's size.
        drop(w);
        let mut w = LogWriter::open(&path, LogConfig { max_size: Some(100), max_file: 1 }).unwrap();
        w.write_record(&[b'x'; 99]).unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() <= 100);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
