//! State on disk: paths, the SQLite database and ids.
//!
//! The database is the source of truth; files such as `index.json` are views
//! regenerated from it. Concurrent berth processes are normal, so every change
//! goes through one SQLite transaction (WAL, busy timeout), never a
//! read-modify-write of a shared file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};

#[derive(thiserror::Error, Debug)]
pub enum StoreError {
    #[error("state database {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error("state database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// A part's tables could not be made or brought up to date.
    #[error("state database: making the {part} tables: {source}")]
    Schema { part: &'static str, source: Box<StoreError> },
}

pub type Result<T> = std::result::Result<T, StoreError>;

pub fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.into();
    move |source| StoreError::Io { path, source }
}

/// Where everything lives. `root` holds persistent state, `run` what dies
/// with a reboot (sockets, pid files).
#[derive(Clone, Debug)]
pub struct Paths {
    pub root: PathBuf,
    pub run: PathBuf,
}

impl Paths {
    pub fn from_env(root: Option<PathBuf>) -> Paths {
        let root = root
            .or_else(|| std::env::var_os("BERTH_ROOT").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("/var/lib/berth"));
        let run = std::env::var_os("BERTH_RUN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/run/berth"));
        Paths { root, run }
    }
    pub fn db(&self) -> PathBuf {
        self.root.join("state.db")
    }
    pub fn blobs(&self) -> PathBuf {
        self.root.join("blobs/sha256")
    }
    pub fn blob(&self, digest: &str) -> PathBuf {
        self.blobs().join(digest.trim_start_matches("sha256:"))
    }
    pub fn layers(&self) -> PathBuf {
        self.root.join("layers")
    }
    pub fn layer_dir(&self, chain_id: &str) -> PathBuf {
        self.layers().join(chain_id.trim_start_matches("sha256:"))
    }
    pub fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }
    /// Emptied container directories waiting for reuse (container::spare).
    pub fn spares(&self) -> PathBuf {
        self.root.join("spare")
    }
    /// The build context's file digests (build::builder's SumCache);
    /// `system reset` and `system prune -a` delete it with the build cache.
    pub fn build_sums(&self) -> PathBuf {
        self.root.join("build-sums")
    }
    pub fn container_run(&self, id: &str) -> PathBuf {
        self.run.join(&id[..12.min(id.len())])
    }
    pub fn attach_socket(&self, id: &str) -> PathBuf {
        self.container_run(id).join("attach.sock")
    }
    pub fn index_lock(&self) -> PathBuf {
        self.root.join("index.lock")
    }
    /// Short tag of a non-default root, so several roots share a host's
    /// global namespaces (nft tables, link aliases, cgroups) without clashing.
    pub fn tag(&self) -> Option<String> {
        if self.root == Path::new("/var/lib/berth") {
            return None;
        }
        use sha2::Digest;
        let h = sha2::Sha256::digest(self.root.to_string_lossy().as_bytes());
        Some(hex::encode(h)[..8].to_string())
    }
    /// The cgroup that holds this root's containers (relative to the
    /// hierarchy's root): `berth` for the default root, `berth-TAG` else.
    pub fn cgroup_parent(&self) -> String {
        match self.tag() {
            None => "berth".into(),
            Some(t) => format!("berth-{t}"),
        }
    }
}

/// A fresh 64-hex id from the kernel's random pool.
pub fn new_id() -> String {
    let mut buf = [0u8; 32];
    getrandom(&mut buf);
    hex::encode(buf)
}

pub fn getrandom(buf: &mut [u8]) {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .expect("reading /dev/urandom");
}

pub fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs() as i64, d.subsec_nanos())
}

/// Now, as image configs carry it: RFC 3339 with trailing zeros of the
/// fraction dropped, the form Go's time.Time marshals to. skopeo and
/// containers/image re-marshal a config when they convert it to OCI; a
/// timestamp in another form (".120000000Z") would change its bytes and so
/// the image ID on the way through them.
pub fn now_image_time() -> String {
    let s = now_rfc3339();
    match s.split_once('.') {
        Some((head, frac)) => {
            let digits = frac.trim_end_matches('Z').trim_end_matches('0');
            if digits.is_empty() { format!("{head}Z") } else { format!("{head}.{digits}Z") }
        }
        None => s,
    }
}

/// A UTC timestamp as berth stores it: RFC 3339 with nanoseconds and Z.
pub fn rfc3339(secs: i64, nanos: u32) -> String {
    match chrono::DateTime::from_timestamp(secs, nanos) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string(),
        None => "1970-01-01T00:00:00.000000000Z".to_string(),
    }
}

/// Seconds since the epoch of any RFC 3339 time (what `rfc3339` wrote, Go's
/// and docker's forms, offsets other than Z).
pub fn parse_rfc3339(s: &str) -> Option<f64> {
    let t = chrono::DateTime::parse_from_rfc3339(s.trim()).ok()?;
    Some(t.timestamp() as f64 + f64::from(t.timestamp_subsec_nanos()) / 1e9)
}

#[cfg(test)]
mod time_tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_and_reads_offsets() {
        let s = rfc3339(1_700_000_000, 250_000_000);
        assert_eq!(s, "2023-11-14T22:13:20.250000000Z");
        assert_eq!(parse_rfc3339(&s), Some(1_700_000_000.25));
        assert_eq!(parse_rfc3339("2023-11-14T23:13:20+01:00"), Some(1_700_000_000.0));
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20Z"), Some(1_700_000_000.0));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS images(
    id TEXT PRIMARY KEY,          -- sha256:<config digest>
    manifest TEXT NOT NULL,       -- manifest digest
    created TEXT NOT NULL,
    size INTEGER NOT NULL,        -- unpacked bytes of all layers
    config TEXT NOT NULL,         -- the OCI image config JSON
    layers TEXT NOT NULL          -- JSON array of chain ids, bottom first
);
CREATE TABLE IF NOT EXISTS tags(
    name TEXT PRIMARY KEY,        -- normalised reference, e.g. busybox:latest
    image_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS layers(
    chain_id TEXT PRIMARY KEY,
    diff_id TEXT NOT NULL,
    blob TEXT NOT NULL,           -- digest of the stored (maybe compressed) blob
    short TEXT NOT NULL UNIQUE,   -- short link name, keeps overlay options small
    size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS containers(
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    image_id TEXT NOT NULL,
    image_ref TEXT NOT NULL,
    created TEXT NOT NULL,
    config TEXT NOT NULL,         -- JSON ContainerConfig (the user's options)
    state TEXT NOT NULL,          -- created | running | paused | exited | removing
    pid INTEGER NOT NULL DEFAULT 0,
    monitor_pid INTEGER NOT NULL DEFAULT 0,
    exit_code INTEGER NOT NULL DEFAULT 0,
    started_at TEXT NOT NULL DEFAULT '',
    finished_at TEXT NOT NULL DEFAULT '',
    oom_killed INTEGER NOT NULL DEFAULT 0,
    restart_count INTEGER NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '',
    health TEXT NOT NULL DEFAULT ''   -- JSON HealthState; '' without a check
);
"#;

/// A connection to state.db. Cheap to open; each process opens its own.
pub struct Db {
    pub conn: Connection,
}

/// The version of the tables (`PRAGMA user_version`). A store at this
/// version has every part's tables with every column, so a connection
/// checks nothing: parsing the parts' dozen statements took a millisecond
/// of each process. Bump it when a part adds a table or a column, so that
/// stores made before are brought up to date once (`Db::upgrade`).
pub const SCHEMA_VERSION: i64 = 1;

impl Db {
    pub fn open(paths: &Paths) -> Result<Db> {
        let path = paths.db();
        let conn = Connection::open(&path).map_err(|source| StoreError::Open { path: path.clone(), source })?;
        conn.busy_timeout(Duration::from_secs(30))?;
        // WAL lets readers (ps, inspect) run while a writer commits.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // Each berth command is a short-lived process whose connection is
        // the last to close: by default that close checkpoints the WAL into
        // the database (two fsyncs) and deletes it, and the next command's
        // first write makes it again (two more): 3 ms of a 14 ms `run`. The
        // WAL stays instead, and a commit checkpoints it once it holds 64
        // pages (every ten runs or so). Not more: the first connection to
        // open rebuilds its index from the whole WAL, a read per page.
        conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
        conn.pragma_update(None, "wal_autocheckpoint", 64)?;
        conn.pragma_update(None, "journal_size_limit", 1 << 20)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version >= SCHEMA_VERSION {
            return Ok(Db { conn });
        }
        let have: Option<String> = conn
            .query_row("SELECT name FROM sqlite_master WHERE name='containers'", [], |r| r.get(0))
            .optional()?;
        if have.is_none() {
            conn.execute_batch(SCHEMA)?;
        }
        let db = Db { conn };
        if have.is_some() {
            // Stores made before health checks.
            db.ensure_column("containers", "health", "TEXT NOT NULL DEFAULT ''")?;
        }
        db.upgrade()?;
        Ok(db)
    }

    /// Makes every part's tables and columns, then marks the store as at
    /// `SCHEMA_VERSION`. Two processes may do it at once: each step is
    /// idempotent.
    fn upgrade(&self) -> Result<()> {
        let parts: [(&'static str, fn(&Db) -> Result<()>); 4] = [
            ("network", crate::network::make_tables),
            ("stack", crate::service::stack::make_tables),
            ("service", crate::service::make_tables),
            ("volume", crate::volume::make_tables),
        ];
        for (part, make) in parts {
            make(self).map_err(|e| StoreError::Schema { part, source: Box::new(e) })?;
        }
        self.conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        Ok(())
    }

    /// Adds a column that stores made by older versions lack. Two processes
    /// may both find it missing; the loser's "duplicate column" is success.
    pub fn ensure_column(&self, table: &str, column: &str, decl: &str) -> Result<()> {
        if self.conn.prepare(&format!("SELECT {column} FROM {table} LIMIT 0")).is_ok() {
            return Ok(());
        }
        match self.conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {decl}")) {
            Err(e) if e.to_string().contains("duplicate column name") => Ok(()),
            r => Ok(r?),
        }
    }

    /// Runs `f` in an IMMEDIATE transaction: the write lock is taken up
    /// front, so two processes never both read-then-write the same rows.
    pub fn write<T>(&mut self, f: impl FnOnce(&rusqlite::Transaction) -> Result<T>) -> Result<T> {
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let v = f(&tx)?;
        tx.commit()?;
        Ok(v)
    }
}

/// What a user's key names in a table with `name` and `id` columns.
pub enum Found<T> {
    One(T),
    /// A hex prefix several ids start with.
    Many(usize),
    None,
}

/// Finds the row `key` names, as docker does: an exact name, then an exact
/// id, then an id prefix (hex only, so `_` or `%` never act as LIKE
/// wildcards). `select` is `SELECT <columns> FROM <table>`.
pub fn lookup<T>(conn: &Connection, select: &str, key: &str, row: impl Fn(&rusqlite::Row) -> rusqlite::Result<T>) -> Result<Found<T>> {
    // A full id first, as docker does (and what the engine itself passes:
    // one statement instead of two); a name before an id otherwise.
    let full_id = key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit());
    for w in if full_id { ["id=?1", "name=?1"] } else { ["name=?1", "id=?1"] } {
        if let Some(x) = conn.query_row(&format!("{select} WHERE {w}"), [key], &row).optional()? {
            return Ok(Found::One(x));
        }
    }
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(Found::None);
    }
    let mut st = conn.prepare(&format!("{select} WHERE id LIKE ?1 || '%'"))?;
    let mut found: Vec<T> = st.query_map([key], &row)?.filter_map(|r| r.ok()).collect();
    Ok(match found.len() {
        0 => Found::None,
        1 => Found::One(found.remove(0)),
        n => Found::Many(n),
    })
}

/// Makes the directories the store needs.
pub fn ensure_dirs(paths: &Paths) -> Result<()> {
    for d in [paths.root.clone(), paths.blobs(), paths.layers(), paths.tmp(), paths.root.join("containers"), paths.run.clone()] {
        std::fs::create_dir_all(&d).map_err(io_err(&d))?;
    }
    register_root(paths);
    let layout = paths.root.join("oci-layout");
    if !layout.exists() {
        std::fs::write(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(io_err(&layout))?;
    }
    Ok(())
}

/// Where each root says which tag it goes by, host-wide: the kernel
/// objects a root makes carry only its tag, and a root deleted with
/// `rm -rf` leaves them to someone who can tell that its root is gone.
/// On tmpfs, so it goes at reboot with those objects.
pub const ROOTS_DIR: &str = "/run/berth-roots";

fn register_root(paths: &Paths) {
    let Some(tag) = paths.tag() else { return };
    let f = Path::new(ROOTS_DIR).join(&tag);
    let root = paths.root.to_string_lossy();
    if std::fs::read_to_string(&f).ok().as_deref() != Some(root.as_ref()) {
        // Best effort: without the register, only --all-roots is blind to it.
        let _ = std::fs::create_dir_all(ROOTS_DIR);
        let _ = std::fs::write(&f, root.as_bytes());
    }
}

/// Drops the register's entries of roots whose directory is gone (deleted
/// with `rm -rf`): where /run is no tmpfs they would pile up for good. A
/// root being made has its directory before its entry. An unregistered tag
/// reads as gone, as a gone root's did. Returns how many went.
pub fn prune_gone_roots() -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(ROOTS_DIR).into_iter().flatten().flatten() {
        let Ok(root) = std::fs::read_to_string(e.path()) else { continue };
        if !root.is_empty() && !Path::new(&root).exists() && std::fs::remove_file(e.path()).is_ok() {
            n += 1;
        }
    }
    n
}

/// Whether the root that goes by `tag` still exists: registered, and its
/// store is there.
pub fn root_of_tag_exists(tag: &str) -> bool {
    std::fs::read_to_string(Path::new(ROOTS_DIR).join(tag)).is_ok_and(|root| Path::new(&root).join("state.db").exists())
}

/// An exclusive advisory lock on a file, released on drop.
pub struct FileLock(#[allow(dead_code)] nix::fcntl::Flock<std::fs::File>);

impl FileLock {
    pub fn exclusive(path: &Path) -> Result<FileLock> {
        let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path).map_err(io_err(path))?;
        nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
            .map(FileLock)
            .map_err(|(_, e)| StoreError::Io { path: path.to_path_buf(), source: e.into() })
    }

    /// Whether someone holds the lock; a missing file is no lock (and is
    /// not made: this only looks).
    pub fn held(path: &Path) -> bool {
        let Ok(f) = std::fs::File::open(path) else { return false };
        matches!(nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock), Err((_, nix::errno::Errno::EWOULDBLOCK)))
    }

    /// The lock if nobody holds it, else None.
    pub fn try_exclusive(path: &Path) -> Result<Option<FileLock>> {
        let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path).map_err(io_err(path))?;
        match nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(l) => Ok(Some(FileLock(l))),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, e)) => Err(StoreError::Io { path: path.to_path_buf(), source: e.into() }),
        }
    }
}

pub fn get_opt<T: rusqlite::types::FromSql>(conn: &Connection, sql: &str, p: impl rusqlite::Params) -> Result<Option<T>> {
    Ok(conn.query_row(sql, p, |r| r.get(0)).optional()?)
}

pub fn exec(conn: &Connection, sql: &str, p: impl rusqlite::Params) -> Result<usize> {
    Ok(conn.execute(sql, p)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(db: &Db, table: &str) -> Vec<String> {
        let mut st = db.conn.prepare(&format!("SELECT name FROM pragma_table_info('{table}')")).unwrap();
        st.query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect()
    }

    /// A store made now, and one made before the parts' tables and their
    /// newer columns, both end up with every table and column, marked at
    /// the current version.
    #[test]
    fn a_store_old_or_new_opens_with_every_table_at_the_current_version() {
        let t = crate::testutil::TempDir::new("store-version");
        let paths = Paths { root: t.0.join("root"), run: t.0.join("run") };
        std::fs::create_dir_all(&paths.root).unwrap();
        let check = |db: &Db| {
            for (table, col) in [("containers", "health"), ("networks", "mtu"), ("endpoints", "impair"), ("ports", "proto"), ("remote_endpoints", "aliases"), ("stacks", "deploying"), ("services", "draining"), ("volumes", "labels")] {
                assert!(columns(db, table).iter().any(|c| c == col), "{table}.{col} is there: {:?}", columns(db, table));
            }
            let v: i64 = db.conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
            assert_eq!(v, SCHEMA_VERSION);
        };
        check(&Db::open(&paths).unwrap());
        // As a store from before the version: base tables only, an old
        // networks table, no health column, version 0.
        let old = Connection::open(paths.db()).unwrap();
        old.execute_batch("DROP TABLE networks; DROP TABLE endpoints; DROP TABLE stacks; DROP TABLE volumes; DROP TABLE services; DROP TABLE remote_endpoints; ALTER TABLE containers DROP COLUMN health; PRAGMA user_version = 0;").unwrap();
        old.execute_batch("CREATE TABLE networks(id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, subnet TEXT NOT NULL, gateway TEXT NOT NULL, bridge TEXT NOT NULL, created TEXT NOT NULL)").unwrap();
        old.execute("INSERT INTO networks VALUES('n1', 'lab', '10.9.0.0/24', '10.9.0.1', 'br-n1', 'then')", []).unwrap();
        drop(old);
        let db = Db::open(&paths).unwrap();
        check(&db);
        // The old rows are kept, with the new columns' defaults.
        let (name, driver): (String, String) = db.conn.query_row("SELECT name, driver FROM networks WHERE id='n1'", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        assert_eq!((name.as_str(), driver.as_str()), ("lab", "bridge"));
        drop(db);
        // A store at the version is taken as it is: nothing is checked or
        // made on open (a table dropped behind berth's back stays gone).
        Connection::open(paths.db()).unwrap().execute_batch("DROP TABLE volumes").unwrap();
        let db = Db::open(&paths).unwrap();
        assert!(columns(&db, "volumes").is_empty(), "a current store is not upgraded again");
    }

    #[test]
    fn time_roundtrip() {
        let s = rfc3339(1_700_000_000, 5);
        assert_eq!(s, "2023-11-14T22:13:20.000000005Z");
        assert_eq!(parse_rfc3339(&s).unwrap().floor(), 1_700_000_000.0);
    }
}
