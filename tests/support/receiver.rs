//! Local HTTP endpoints a test points bgcloud (or its installer) at: a webhook receiver that
//! records what it got, a file server standing in for a release download, and a port where
//! nothing listens.

use std::io::{Read, Write};
use std::net::TcpStream;

use serde_json::Value;

/// A local HTTP endpoint standing in for a webhook: records each request's path and body and
/// answers `status`. Its thread lives as long as the test binary.
pub struct Receiver {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    received: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
}

impl Receiver {
    pub fn start(status: u16) -> Receiver {
        Receiver::scripted(vec![(status, "", "")])
    }

    /// Answers every request `status` with `body`.
    pub fn start_with_body(status: u16, body: &'static str) -> Receiver {
        Receiver::scripted(vec![(status, "", body)])
    }

    /// Answers its requests in turn with `(status, extra header line, body)`; the last answer
    /// repeats. E.g. Slack slowing a sender down: `(429, "Retry-After: 1", "rate_limited")`.
    pub fn scripted(answers: Vec<(u16, &'static str, &'static str)>) -> Receiver {
        Receiver::answering(move |n, _| {
            let (status, header, body) = answers[n.min(answers.len() - 1)];
            (status, header.to_string(), body.as_bytes().to_vec())
        })
    }

    /// Serves the files under `root` (a GET of `/a/b` answers `root/a/b`, 404 where there is
    /// none), as a release server or mirror would.
    pub fn files(root: std::path::PathBuf) -> Receiver {
        Receiver::answering(move |_, path| {
            let relative = path.trim_start_matches('/');
            match std::fs::read(root.join(relative)) {
                Ok(bytes) if !relative.split('/').any(|c| c == "..") => (200, String::new(), bytes),
                _ => (404, String::new(), b"not found".to_vec()),
            }
        })
    }

    /// Answers the `n`th request (to `path`) with `answer(n, path)`: (status, extra header line
    /// or "", body).
    fn answering(
        answer: impl Fn(usize, &str) -> (u16, String, Vec<u8>) + Send + 'static,
    ) -> Receiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the receiver");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = received.clone();
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().flatten().enumerate() {
                let request = read_request(&stream);
                let path = request.as_ref().map(|(p, _)| p.clone()).unwrap_or_default();
                if let Some(request) = request {
                    log.lock().unwrap().push(request);
                }
                let (status, header, body) = answer(n, &path);
                let header = match header.as_str() {
                    "" => String::new(),
                    h => format!("{h}\r\n"),
                };
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\n{header}Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(&body);
            }
        });
        Receiver { base, received }
    }

    /// (path, body) of every request so far, in the order they came.
    pub fn received(&self) -> Vec<(String, String)> {
        self.received.lock().unwrap().clone()
    }

    /// The JSON bodies of the requests to `path`.
    pub fn bodies(&self, path: &str) -> Vec<Value> {
        self.received()
            .into_iter()
            .filter(|(p, _)| p == path)
            .map(|(_, b)| serde_json::from_str(&b).unwrap_or_else(|e| panic!("{e}: {b}")))
            .collect()
    }
}

/// One HTTP/1.1 request's path and body (Content-Length framed).
fn read_request(stream: &TcpStream) -> Option<(String, String)> {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((path, String::from_utf8_lossy(&body).into_owned()))
}

/// A local port nothing listens on.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
