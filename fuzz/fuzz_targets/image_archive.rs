#![no_main]
//! `berth load`: image archives and the manifests and indexes inside them,
//! through the public entry point (image::archive::load), into a store on a
//! private size-limited tmpfs (see common).
//!
//! A fuzzer cannot forge sha256 digests, so the target builds the archive:
//! the input is a mode byte, then up to four parts separated by 0xFF (a byte
//! no UTF-8 JSON holds): TOP, MANIFEST, CONFIG, LAYER. In the JSON parts
//! `@L`/`@l` become the layer blob's digest/size, `@D` its diff_id, `@C`/`@c`
//! the config's and `@M`/`@m` the manifest's, so inputs can be valid and
//! mutations reach past the digest checks into the index walk, the
//! manifest/config parsing and the layer store.
//!
//! Mode bits: 1 docker-archive (TOP is manifest.json; the config is at
//! config.json and <hex>.json, the layer at layer.tar) instead of an OCI
//! layout (TOP is index.json; blobs under blobs/sha256); 2 gzip the whole
//! archive; 4 ignore the parts and load the rest of the input as it is, to
//! fuzz the outer tar itself (links, odd entries).

mod common;

use std::io::{Read, Write};
use std::path::Path;

use berth::store::{Db, Paths};
use sha2::Digest;

fn sha(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(b)))
}

fn subst(part: &[u8], pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut s = String::from_utf8_lossy(part).into_owned();
    for (k, v) in pairs {
        s = s.replace(k, v);
    }
    s.into_bytes()
}

fn add(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, name, data).unwrap();
}

fn archive(mode: u8, rest: &[u8]) -> Vec<u8> {
    let mut parts = rest.splitn(4, |&b| b == 0xFF);
    let (top, manifest, config, layer) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let mut plain = Vec::new();
    let unpacked = berth::image::tar::decompressed(layer).map(|mut r| r.read_to_end(&mut plain));
    let diff_id = if matches!(unpacked, Ok(Ok(_))) { sha(&plain) } else { sha(layer) };
    let (l, ls) = (sha(layer), layer.len().to_string());
    let config = subst(config, &[("@D", &diff_id), ("@L", &l), ("@l", &ls)]);
    let (c, cs) = (sha(&config), config.len().to_string());
    let manifest = subst(manifest, &[("@D", &diff_id), ("@L", &l), ("@l", &ls), ("@C", &c), ("@c", &cs)]);
    let (m, ms) = (sha(&manifest), manifest.len().to_string());
    let top = subst(top, &[("@D", &diff_id), ("@L", &l), ("@l", &ls), ("@C", &c), ("@c", &cs), ("@M", &m), ("@m", &ms)]);
    let blob = |d: &str| format!("blobs/sha256/{}", d.trim_start_matches("sha256:"));
    let mut b = tar::Builder::new(Vec::new());
    if mode & 1 == 1 {
        add(&mut b, "manifest.json", &top);
        add(&mut b, "config.json", &config);
        add(&mut b, &format!("{}.json", c.trim_start_matches("sha256:")), &config);
        add(&mut b, "layer.tar", layer);
    } else {
        add(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
        add(&mut b, "index.json", &top);
        add(&mut b, &blob(&m), &manifest);
        add(&mut b, &blob(&c), &config);
        add(&mut b, &blob(&l), layer);
    }
    b.into_inner().unwrap()
}

struct Store {
    paths: Paths,
    db: Db,
}

fn fresh(top: &Path) -> Store {
    common::empty_dir(top);
    let paths = Paths { root: top.join("root"), run: top.join("run") };
    std::fs::create_dir_all(&paths.root).unwrap();
    let db = Db::open(&paths).unwrap();
    Store { paths, db }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // Thread-local by necessity: the scratch mount lives in this thread's namespace.
    thread_local! { static STORE: std::cell::RefCell<Option<Store>> = const { std::cell::RefCell::new(None) }; }
    let top = common::scratch("archive");
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut bytes = if mode & 4 == 4 { rest.to_vec() } else { archive(mode, rest) };
    if mode & 2 == 2 {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&bytes).unwrap();
        bytes = e.finish().unwrap();
    }
    STORE.with_borrow_mut(|s| {
        let st = s.get_or_insert_with(|| fresh(top));
        let loaded = berth::image::archive::load(&st.paths, &mut st.db, &mut bytes.as_slice());
        if std::env::var_os("BERTH_FUZZ_SHOW").is_some() {
            // To check that seeds load: BERTH_FUZZ_SHOW=1 image_archive seeds/image_archive/*
            eprintln!("load: {loaded:?}");
        }
        static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if loaded.is_ok() || n % 1000 == 999 {
            // Keep the store small and each input independent of the last
            // (what failed loads leave behind is for `system check`, not us).
            *s = None;
            *s = Some(fresh(top));
        }
    });
});
