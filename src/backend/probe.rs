//! Before the smoke tests: proof that the preview route reaches the colour being prepared. A
//! listener rule change reaches the load balancer's nodes after a short, unpublished delay;
//! until then a request with the preview header meets bgcloud's guard rule (503 with
//! [`GUARD_BODY`]). The probe asks the preview URL, with the header, until that many answers
//! in a row are not the guard's.

use std::time::{Duration, Instant};

use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_http_client::Connector;
use aws_smithy_runtime_api::client::http::HttpConnector;
use aws_smithy_runtime_api::http::Request;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;

use crate::backend::preview::{Route, GUARD_BODY};
use crate::error::{root_cause, Error, Result};

/// Answers in a row that must come from the colour (not the guard): the load balancer has
/// several nodes, and each takes the change up on its own.
const IN_A_ROW: usize = 3;
/// One request's limit.
const ATTEMPT: Duration = Duration::from_secs(5);

/// What one probe request met.
enum Met {
    /// The guard's 503: the preview rule does not reach this request (yet).
    Guard,
    /// Anything else: the preview rule answered (its colour, whatever the status).
    Colour(u16),
    /// No answer at all: the URL cannot be reached from here.
    Unreachable(String),
}

/// Asks `route`'s URL at `path` with the preview header until [`IN_A_ROW`] answers in a row
/// come from past the guard, every `poll`, for at most `within`. A URL that cannot be reached
/// from here (no network path, a certificate that does not name it) is one warning and no
/// proof: the smoke tests then start as they are, and a stale rule still only answers them
/// with the guard's 503, never with a user colour.
pub async fn reaches(route: &Route, path: &str, poll: Duration, within: Duration) -> Result<()> {
    let connector = Connector::builder()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .build();
    let url = format!("{}{}", route.url.trim_end_matches('/'), path);
    let deadline = Instant::now() + within;
    let mut in_a_row = 0;
    let mut guarded = 0;
    loop {
        match ask(&connector, &url, route).await {
            Met::Colour(status) => {
                in_a_row += 1;
                if in_a_row >= IN_A_ROW {
                    tracing::info!(
                        "the preview route reaches {} ({IN_A_ROW} answers in a row past the \
                         guard, the last {status}{})",
                        route
                            .color
                            .map_or("the prepared colour".into(), |c| c.to_string()),
                        match guarded {
                            0 => String::new(),
                            n => format!("; {n} earlier requests met the guard"),
                        }
                    );
                    return Ok(());
                }
            }
            Met::Guard => {
                in_a_row = 0;
                guarded += 1;
            }
            Met::Unreachable(why) => {
                tracing::warn!(
                    "could not probe the preview route at {} ({why}); the smoke tests start \
                     without proof that the rule reached the load balancer's nodes (a stale rule \
                     answers them with bgcloud's guard 503, never with a user colour)",
                    route.url
                );
                return Ok(());
            }
        }
        if Instant::now() + poll > deadline {
            return Err(Error::failed(format!(
                "the preview route did not reach {} within {}: requests with {} still met \
                 bgcloud's guard rule (503), so the load balancer still routes by the rule as it \
                 was. No user traffic was moved; deploy again",
                route
                    .color
                    .map_or("the prepared colour".into(), |c| c.to_string()),
                humantime::format_duration(within),
                route.header_line()
            )));
        }
        tokio::time::sleep(poll).await;
    }
}

async fn ask(connector: &Connector, url: &str, route: &Route) -> Met {
    let mut request = Request::new(SdkBody::empty());
    if request.set_uri(url).is_err() {
        return Met::Unreachable("it is not a valid URL".into());
    }
    let _ = request.set_method("GET");
    request
        .headers_mut()
        .insert(route.header.clone(), route.value.clone());
    match tokio::time::timeout(ATTEMPT, connector.call(request)).await {
        Err(_) => Met::Unreachable(format!("no answer within {} s", ATTEMPT.as_secs())),
        Ok(Err(e)) => Met::Unreachable(root_cause(&e)),
        Ok(Ok(response)) => {
            let status = response.status().as_u16();
            if status != 503 {
                return Met::Colour(status);
            }
            let mut body = ByteStream::new(response.into_body());
            let mut bytes = Vec::new();
            while let Some(Ok(chunk)) = body.next().await {
                bytes.extend_from_slice(&chunk);
                if bytes.len() > GUARD_BODY.len() {
                    break;
                }
            }
            match String::from_utf8_lossy(&bytes).starts_with(GUARD_BODY) {
                true => Met::Guard,
                false => Met::Colour(status),
            }
        }
    }
}
