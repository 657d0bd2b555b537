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

/// One attempt's limit; a failed attempt is retried once after [`RETRY_AFTER`].
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
const RETRY_AFTER: Duration = Duration::from_millis(500);

/// Posts JSON bodies for one run.
#[derive(Default)]
pub struct Client {
    /// Built at the first send: loading the root certificates is not free.
    connector: OnceLock<Connector>,
}

impl Client {
    /// Posts `body` to `url`, retrying once where a retry can help; the error is why it failed,
    /// fit for a warning (never the URL).
    pub async fn post(&self, url: &str, body: Vec<u8>) -> Result<(), String> {
        let mut why = String::new();
        for attempt in 0..2 {
            if attempt > 0 {
                tokio::time::sleep(RETRY_AFTER).await;
            }
            match self.attempt(url, body.clone()).await {
                Ok(()) => return Ok(()),
                Err(failure) => {
                    why = failure.why;
                    if !failure.retry {
                        break;
                    }
                }
            }
        }
        Err(why)
    }

    async fn attempt(&self, url: &str, body: Vec<u8>) -> Result<(), Failure> {
        let mut request = Request::new(SdkBody::from(body));
        let permanent = |why: &str| Failure {
            retry: false,
            why: why.to_string(),
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
            }),
            Ok(Err(e)) => Err(Failure {
                retry: true,
                why: redact(&root_cause(&e), url),
            }),
            Ok(Ok(response)) if response.status().is_success() => Ok(()),
            Ok(Ok(response)) => {
                let status = response.status().as_u16();
                Err(Failure {
                    // A 4xx other than 429 is the URL or the payload: trying again won't help.
                    retry: status == 429 || status >= 500,
                    why: format!("HTTP {status}"),
                })
            }
        }
    }
}

struct Failure {
    retry: bool,
    why: String,
}

/// The innermost error's text ("Connection refused (os error 111)", a certificate problem):
/// what to act on, without the client's layers around it.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
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
