//! Image references: `busybox`, `busybox:1.36`, `127.0.0.1:5000/lab/web:1`,
//! `name@sha256:...`. Pure functions, unit-tested beside.
//!
//! berth's only reference parser: the registry client gets the parsed
//! parts (`registry::oci_ref`), so a name is never read two ways.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Registry host, `docker.io` when none was given.
    pub registry: String,
    /// Repository path, `library/busybox` for Docker Hub's official images.
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

#[derive(thiserror::Error, Debug, PartialEq)]
#[error("invalid reference format {input:?}: {reason}")]
pub struct ReferenceError {
    pub input: String,
    pub reason: &'static str,
}

impl Reference {
    pub fn parse(input: &str) -> Result<Reference, ReferenceError> {
        let err = |reason| ReferenceError { input: input.to_string(), reason };
        if input.is_empty() {
            return Err(err("empty name"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((r, d)) => {
                let hex = d.strip_prefix("sha256:").ok_or_else(|| err("digest must start with sha256:"))?;
                if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
                    return Err(err("digest must be sha256: and 64 lowercase hex digits"));
                }
                (r, Some(d.to_string()))
            }
            None => (input, None),
        };
        // A colon after the last slash separates the tag; one before it
        // belongs to a registry's port.
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(rest[last_slash + i + 1..].to_string())),
            None => (rest, None),
        };
        if let Some(t) = &tag
            && (t.is_empty() || t.len() > 128 || !t.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) || t.starts_with(['.', '-'])) {
                return Err(err("tag must be 1-128 of [A-Za-z0-9_.-], not starting with . or -"));
            }
        let mut parts: Vec<&str> = name.split('/').collect();
        let registry = if parts.len() > 1 && (parts[0].contains('.') || parts[0].contains(':') || parts[0] == "localhost") {
            parts.remove(0).to_string()
        } else {
            "docker.io".to_string()
        };
        for p in &parts {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)) {
                return Err(err("repository name must be lowercase letters, digits and . _ - separated by /"));
            }
        }
        let mut repository = parts.join("/");
        if registry == "docker.io" && !repository.contains('/') {
            repository = format!("library/{repository}");
        }
        let tag = if tag.is_none() && digest.is_none() { Some("latest".to_string()) } else { tag };
        Ok(Reference { registry, repository, tag, digest })
    }

    /// The short name people type and `images` shows: `busybox`,
    /// `127.0.0.1:5000/lab/web`.
    pub fn familiar_name(&self) -> String {
        if self.registry == "docker.io" {
            self.repository.strip_prefix("library/").unwrap_or(&self.repository).to_string()
        } else {
            format!("{}/{}", self.registry, self.repository)
        }
    }

    /// The key under which a tag is stored: `busybox:latest`.
    pub fn tag_key(&self) -> Option<String> {
        self.tag.as_ref().map(|t| format!("{}:{t}", self.familiar_name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_go_to_docker_hub() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(r.registry, "docker.io");
        assert_eq!(r.repository, "library/busybox");
        assert_eq!(r.tag.as_deref(), Some("latest"));
        assert_eq!(r.tag_key().unwrap(), "busybox:latest");
    }

    #[test]
    fn registry_with_port_and_tag() {
        let r = Reference::parse("127.0.0.1:5000/lab/web:1").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "lab/web");
        assert_eq!(r.tag.as_deref(), Some("1"));
        assert_eq!(r.tag_key().unwrap(), "127.0.0.1:5000/lab/web:1");
    }

    #[test]
    fn port_without_tag_is_not_a_tag() {
        let r = Reference::parse("localhost:5000/web").unwrap();
        assert_eq!(r.registry, "localhost:5000");
        assert_eq!(r.tag.as_deref(), Some("latest"));
    }

    #[test]
    fn digest() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("busybox@{d}")).unwrap();
        assert_eq!(r.digest.as_deref(), Some(d.as_str()));
        assert_eq!(r.tag, None);
    }

    fn parts(s: &str) -> (String, String, Option<String>, Option<String>) {
        let r = Reference::parse(s).unwrap();
        (r.registry, r.repository, r.tag, r.digest)
    }

    #[test]
    fn docker_hub_normalisation() {
        let p = |reg: &str, repo: &str, tag: Option<&str>| (reg.to_string(), repo.to_string(), tag.map(String::from), None);
        assert_eq!(parts("user/img"), p("docker.io", "user/img", Some("latest")));
        assert_eq!(parts("docker.io/busybox"), p("docker.io", "library/busybox", Some("latest")));
        assert_eq!(parts("docker.io/library/busybox:1"), p("docker.io", "library/busybox", Some("1")));
        assert_eq!(parts("a/b/c"), p("docker.io", "a/b/c", Some("latest")));
        assert_eq!(Reference::parse("user/img:2").unwrap().tag_key().unwrap(), "user/img:2");
        assert_eq!(Reference::parse("docker.io/library/busybox").unwrap().familiar_name(), "busybox");
    }

    #[test]
    fn registry_hosts() {
        // A first component is a host when it has a dot, a port or is localhost.
        assert_eq!(parts("localhost/x").0, "localhost");
        assert_eq!(parts("localhost:5000/x"), ("localhost:5000".into(), "x".into(), Some("latest".into()), None));
        assert_eq!(parts("ghcr.io/o/r:v1").0, "ghcr.io");
        assert_eq!(Reference::parse("localhost:5000/x").unwrap().tag_key().unwrap(), "localhost:5000/x:latest");
    }

    #[test]
    fn digest_with_host_and_with_tag() {
        let d = format!("sha256:{}", "0123456789abcdef".repeat(4));
        assert_eq!(parts(&format!("host.example/x@{d}")), ("host.example".into(), "x".into(), None, Some(d.clone())));
        assert_eq!(parts(&format!("busybox:1.36@{d}")), ("docker.io".into(), "library/busybox".into(), Some("1.36".into()), Some(d.clone())));
        assert_eq!(Reference::parse(&format!("host.example/x@{d}")).unwrap().tag_key(), None);
    }

    #[test]
    fn bad_references() {
        let upper = format!("busybox@sha256:{}", "A".repeat(64));
        let short = format!("busybox@sha256:{}", "a".repeat(63));
        let algo = format!("busybox@md5:{}", "a".repeat(64));
        for bad in ["", "Busybox", "user/Img", "localhost:5000/X", "busybox:", "busybox@sha256:xyz", &upper, &short, &algo, "a//b", "/x", "x/", "busybox:-x", "busybox:a b"] {
            assert!(Reference::parse(bad).is_err(), "{bad} should be refused");
        }
        let e = Reference::parse("Busybox").unwrap_err().to_string();
        assert!(e.contains("\"Busybox\"") && e.contains("lowercase"), "{e}");
        assert!(Reference::parse("").unwrap_err().to_string().contains("empty"));
        assert!(Reference::parse(&algo).unwrap_err().to_string().contains("sha256:"));
    }
}
