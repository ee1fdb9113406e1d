//! `http_get` for scripts and tests, over reqwest: every address a name
//! resolves to is tried (`localhost` may be ::1 first), the body is framed
//! by the protocol (length, chunks, close), https works. No proxies and no
//! redirects followed, so a test sees exactly what the server said.

use std::time::Duration;

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The error and its causes, on one line: reqwest's own message alone
/// ("error sending request") does not say what went wrong.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

pub fn get(url: &str, timeout: Duration) -> Result<Response, String> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!("http_get {url:?}: the URL must start with http:// or https://"));
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("http_get {url:?}: {e}"))?;
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("http_get {url:?}: no host"));
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| format!("http_get {url}: {e}"))?;
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent("berth")
            .build()
            .map_err(|e| format!("http_get {url}: {}", chain(&e)))?;
        let resp = client.get(parsed).send().await.map_err(|e| format!("http_get {url}: {}", chain(&e)))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().iter().map(|(k, v)| (k.as_str().to_ascii_lowercase(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect();
        let body = resp.bytes().await.map_err(|e| format!("http_get {url}: reading the answer: {}", chain(&e)))?.to_vec();
        Ok(Response { status, headers, body })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn bad_urls_say_why() {
        assert!(get("ftp://x/", Duration::from_secs(1)).unwrap_err().contains("must start with http:// or https://"));
        assert!(get("http://x:99999/", Duration::from_secs(1)).unwrap_err().contains("http_get"));
    }

    /// Serves one answer on 127.0.0.1 and checks the request line.
    fn serve(answer: &'static str) -> (u16, std::thread::JoinHandle<()>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
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
        (port, t)
    }

    #[test]
    fn reads_length_chunked_and_close_delimited_answers() {
        for answer in [
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: b\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n",
            "HTTP/1.0 200 OK\r\nX-A: b\r\n\r\nhello",
        ] {
            let (port, t) = serve(answer);
            let r = get(&format!("http://127.0.0.1:{port}/x"), Duration::from_secs(5)).unwrap();
            t.join().unwrap();
            assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
            assert!(r.headers.contains(&("x-a".into(), "b".into())));
        }
    }

    #[test]
    fn localhost_finds_a_server_on_127_0_0_1() {
        // localhost may resolve to ::1 first; that address refuses, the
        // next one answers.
        let (port, t) = serve("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        let r = get(&format!("http://localhost:{port}/x"), Duration::from_secs(5)).unwrap();
        t.join().unwrap();
        assert_eq!(r.status, 404);
    }
}
