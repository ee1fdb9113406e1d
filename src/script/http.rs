//! `http_get` for scripts and tests: a small HTTP/1.1 client over a plain
//! TCP connection (labs publish plain HTTP; no TLS, no proxies, no
//! redirects followed, so a test sees exactly what the server said).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

fn split_url(url: &str) -> Result<(String, u16, String), String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        if url.starts_with("https://") { format!("http_get {url:?}: https is not supported; labs publish plain http") } else { format!("http_get {url:?}: the URL must start with http://") }
    })?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, p.parse::<u16>().map_err(|_| format!("http_get {url:?}: bad port {p:?}"))?),
        _ => (hostport, 80),
    };
    if host.is_empty() {
        return Err(format!("http_get {url:?}: no host"));
    }
    Ok((host.trim_start_matches('[').trim_end_matches(']').to_string(), port, path.to_string()))
}

pub fn get(url: &str, timeout: Duration) -> Result<Response, String> {
    let (host, port, path) = split_url(url)?;
    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("http_get {url}: cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("http_get {url}: {host} has no address"))?;
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("http_get {url}: connecting to {addr}: {e}"))?;
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    let host_header = if port == 80 { host.clone() } else { format!("{host}:{port}") };
    // One write: a request in pieces confuses servers that read it once.
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: berth\r\nAccept: */*\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).map_err(|e| format!("http_get {url}: sending: {e}"))?;
    let mut r = BufReader::new(s);
    let rd = |e: std::io::Error| format!("http_get {url}: reading the answer: {e}");
    let mut line = String::new();
    r.read_line(&mut line).map_err(rd)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .filter(|_| line.starts_with("HTTP/"))
        .ok_or_else(|| format!("http_get {url}: not an HTTP answer: {:?}", line.trim_end()))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if r.read_line(&mut line).map_err(rd)? == 0 {
            break;
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let header = |k: &str| headers.iter().find(|(h, _)| h == k).map(|(_, v)| v.as_str());
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            line.clear();
            r.read_line(&mut line).map_err(rd)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16).map_err(|_| format!("http_get {url}: bad chunk size {:?}", line.trim()))?;
            if size == 0 {
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..]).map_err(rd)?;
            line.clear();
            r.read_line(&mut line).map_err(rd)?;
        }
    } else if let Some(n) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(n, 0);
        r.read_exact(&mut body).map_err(rd)?;
    } else {
        r.read_to_end(&mut body).map_err(rd)?;
    }
    Ok(Response { status, headers, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_host_port_path() {
        assert_eq!(split_url("http://127.0.0.1:8080/a?b").unwrap(), ("127.0.0.1".into(), 8080, "/a?b".into()));
        assert_eq!(split_url("http://localhost").unwrap(), ("localhost".into(), 80, "/".into()));
        assert!(split_url("https://x/").unwrap_err().contains("https is not supported"));
        assert!(split_url("ftp://x/").unwrap_err().contains("must start with http://"));
        assert!(split_url("http://x:99999/").unwrap_err().contains("bad port"));
    }

    #[test]
    fn reads_length_chunked_and_close_delimited_answers() {
        use std::net::TcpListener;
        for answer in [
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: b\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n",
            "HTTP/1.0 200 OK\r\nX-A: b\r\n\r\nhello",
        ] {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = l.local_addr().unwrap().port();
            let t = std::thread::spawn(move || {
                let (mut s, _) = l.accept().unwrap();
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.ends_with(b"\r\n\r\n") {
                    let n = s.read(&mut buf).unwrap();
                    assert!(n > 0, "the request ends with an empty line");
                    req.extend_from_slice(&buf[..n]);
                }
                assert!(String::from_utf8_lossy(&req).starts_with("GET /x HTTP/1.1\r\n"));
                s.write_all(answer.as_bytes()).unwrap();
            });
            let r = get(&format!("http://127.0.0.1:{port}/x"), Duration::from_secs(5)).unwrap();
            t.join().unwrap();
            assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
            assert!(r.headers.contains(&("x-a".into(), "b".into())));
        }
    }
}
