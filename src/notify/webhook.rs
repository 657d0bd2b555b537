//! The HTTP delivery of a notification: one POST of its JSON body through the SDK's own
//! connector (the same hyper, rustls (aws-lc) and native root store as the AWS calls, no second
//! TLS stack), within a timeout, tried again once where that can help. A failure comes back as a
//! reason with the URL cut out: webhook URLs carry their secret in the path.

use std::sync::OnceLock;
use std::time::Duration;

use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_http_client::Connector;
use aws_smithy_runtime_api::client::http::HttpConnector;
use aws_smithy_runtime_api::http::Request;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;

use crate::error::root_cause;

/// One attempt's limit; a failed attempt is retried once after [`RETRY_AFTER`].
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
const RETRY_AFTER: Duration = Duration::from_millis(500);
/// The longest a 429's `Retry-After` is waited for: Slack asks for seconds (it allows about one
/// message a second per webhook); a release does not wait minutes for a chat line.
const RETRY_AFTER_CAP: Duration = Duration::from_secs(10);
/// How much of an error answer's body is kept for the warning (Slack's is one word:
/// `invalid_payload`, `no_service`, `channel_is_archived`).
const BODY_SHOWN: usize = 200;

/// Why a delivery failed.
#[derive(Debug)]
pub struct Undelivered {
    /// In words, without the URL.
    pub why: String,
    /// The endpoint is there but asked to slow down (429): later events may still go.
    pub rate_limited: bool,
}

/// Posts JSON bodies for one run.
#[derive(Default)]
pub struct Client {
    /// Built at the first send: loading the root certificates is not free.
    connector: OnceLock<Connector>,
}

impl Client {
    /// Posts `body` to `url`, retrying once where a retry can help; the error is why it failed,
    /// fit for a warning (never the URL).
    pub async fn post(&self, url: &str, body: Vec<u8>) -> Result<(), Undelivered> {
        let mut last = None;
        for _ in 0..2 {
            if let Some(failure) = &last {
                let Failure { retry_after, .. } = failure;
                tokio::time::sleep(retry_after.unwrap_or(RETRY_AFTER).min(RETRY_AFTER_CAP)).await;
            }
            match self.attempt(url, body.clone()).await {
                Ok(()) => return Ok(()),
                Err(failure) => {
                    let retry = failure.retry;
                    last = Some(failure);
                    if !retry {
                        break;
                    }
                }
            }
        }
        let failure = last.expect("an attempt was made");
        Err(Undelivered {
            why: failure.why,
            rate_limited: failure.status == Some(429),
        })
    }

    async fn attempt(&self, url: &str, body: Vec<u8>) -> Result<(), Failure> {
        let mut request = Request::new(SdkBody::from(body));
        let permanent = |why: &str| Failure {
            retry: false,
            why: why.to_string(),
            status: None,
            retry_after: None,
        };
        // Neither error is shown: either could quote the URL.
        request
            .set_uri(url)
            .map_err(|_| permanent("it is not a valid URL"))?;
        request
            .set_method("POST")
            .map_err(|_| permanent("POST refused"))?;
        request
            .headers_mut()
            .insert("content-type", "application/json");
        // The SDK's own connector: the same hyper, rustls (aws-lc) and root certificates.
        let connector = self.connector.get_or_init(|| {
            Connector::builder()
                .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
                .build()
        });
        match tokio::time::timeout(ATTEMPT_TIMEOUT, connector.call(request)).await {
            Err(_) => Err(Failure {
                retry: true,
                why: format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs()),
                status: None,
                retry_after: None,
            }),
            Ok(Err(e)) => Err(Failure {
                retry: true,
                why: redact(&root_cause(&e), url),
                status: None,
                retry_after: None,
            }),
            Ok(Ok(response)) if response.status().is_success() => Ok(()),
            Ok(Ok(response)) => {
                let status = response.status().as_u16();
                // Seconds, as Slack sends it (an HTTP date is not worth parsing here).
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let said = error_text(response.into_body()).await;
                let said = redact(&said, url);
                Err(Failure {
                    // A 4xx other than 429 is the URL or the payload: trying again won't help.
                    retry: status == 429 || status >= 500,
                    why: match said.is_empty() {
                        true => format!("HTTP {status}"),
                        false => format!("HTTP {status}: {said}"),
                    },
                    status: Some(status),
                    retry_after,
                })
            }
        }
    }
}

struct Failure {
    retry: bool,
    why: String,
    status: Option<u16>,
    /// The answer's `Retry-After`, when it gave one.
    retry_after: Option<Duration>,
}

/// The start of an error answer's body, on one line: what the endpoint said was wrong.
async fn error_text(body: SdkBody) -> String {
    let mut stream = ByteStream::new(body);
    let mut bytes = Vec::new();
    let read = async {
        while let Some(Ok(chunk)) = stream.next().await {
            bytes.extend_from_slice(&chunk);
            if bytes.len() >= BODY_SHOWN {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(ATTEMPT_TIMEOUT, read).await;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(BODY_SHOWN)]);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `text` with the URL, and its path (where a webhook keeps its secret), cut out: HTTP client
/// errors may quote them.
fn redact(text: &str, url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    let mut text = text.replace(url, "<the URL>").replace(rest, "<the URL>");
    if path.len() > 1 {
        text = text.replace(path, "<the path>");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_https_url_is_spoken_to_in_tls() {
        // A plain-HTTP server: the client's TLS handshake gets an answer that is not TLS.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            for mut stream in listener.incoming().flatten() {
                let _ = stream.read(&mut [0; 512]);
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
            }
        });
        let url = format!("https://127.0.0.1:{port}/hook/s3cr3t");
        let n = Client::default();
        let failure = n.attempt(&url, b"{}".to_vec()).await.unwrap_err();
        assert!(
            failure.retry && !failure.why.contains("s3cr3t"),
            "{}",
            failure.why
        );
        let http = format!("http://127.0.0.1:{port}/hook/s3cr3t");
        assert!(n.attempt(&http, b"{}".to_vec()).await.is_ok());
    }

    #[test]
    fn redact_cuts_the_url_and_its_path_out_of_an_error() {
        let url = "http://127.0.0.1:9/hook/s3cr3t";
        let text = "error sending to http://127.0.0.1:9/hook/s3cr3t: 127.0.0.1:9/hook/s3cr3t \
                    or /hook/s3cr3t refused";
        let out = redact(text, url);
        assert!(!out.contains("s3cr3t"), "{out}");
        assert_eq!(redact("connection refused", url), "connection refused");
    }
}
