//! Image references: `busybox`, `busybox:1.36`, `127.0.0.1:5000/lab/web:1`,
//! `name@sha256:...`. Pure functions, unit-tested beside.

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

    #[test]
    fn bad_references() {
        for bad in ["", "Busybox", "busybox:", "busybox@sha256:xyz", "a//b", "busybox:-x"] {
            assert!(Reference::parse(bad).is_err(), "{bad} should be refused");
        }
    }
}
