//! CloudFront: which release the distribution serves (its S3 origin's path), switching it with
//! `If-Match` (retried when another writer got in between), invalidating (paths encoded as
//! CloudFront wants them) and waiting.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_cloudfront::error::ProvideErrorMetadata;
use aws_sdk_cloudfront::types::{InvalidationBatch, Paths};
use aws_sdk_cloudfront::Client;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

use crate::config::FrontendConfig;
use crate::error::{aws, Error, Result};
use crate::output::Waiting;

/// The origin path that serves a release.
pub fn origin_path(id: &str) -> String {
    format!("/releases/{id}")
}

/// Whether a CloudFront origin domain is `bucket`'s S3 endpoint.
fn is_bucket_origin(domain: &str, bucket: &str) -> bool {
    domain
        .strip_prefix(bucket)
        .and_then(|rest| rest.strip_prefix(".s3"))
        .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('-'))
}

/// What the distribution says about bgcloud's releases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// The release it serves now (its site origin's path), if it is a bgcloud release.
    pub live: Option<String>,
    /// True when a cache behavior for `/<hashed_dir>*` serves the bucket root: content-hashed
    /// assets are then stored once under `<hashed_dir>` and shared by every release, and a
    /// release writes only its new assets and its unhashed files.
    pub shared_assets: bool,
}

pub async fn inspect(cf: &Client, config: &FrontendConfig) -> Result<Site> {
    Ok(snapshot(cf, config).await?.0)
}

/// The distribution's config as read, with its ETag: what [`switch`] updates first (a change
/// by anyone since then fails its `If-Match`, and the switch reads again).
pub struct Snapshot {
    dist: aws_sdk_cloudfront::types::DistributionConfig,
    etag: String,
}

/// [`inspect`], keeping what was read for a [`switch`] that follows.
pub async fn snapshot(cf: &Client, config: &FrontendConfig) -> Result<(Site, Snapshot)> {
    let (dist, etag) = read(cf, config).await?;
    Ok((site(&dist, config)?, Snapshot { dist, etag }))
}

fn site(
    dist: &aws_sdk_cloudfront::types::DistributionConfig,
    config: &FrontendConfig,
) -> Result<Site> {
    let index = origin_index(dist, config)?;
    let origins = dist
        .origins
        .as_ref()
        .map(|o| o.items.as_slice())
        .unwrap_or_default();
    let path = origins[index].origin_path.clone().unwrap_or_default();
    let live = path
        .strip_prefix("/releases/")
        .filter(|id| !id.is_empty())
        .map(str::to_string);
    let pattern = format!("/{}*", config.hashed_dir);
    let shared_assets = !config.hashed_dir.is_empty()
        && dist
            .cache_behaviors
            .as_ref()
            .and_then(|b| b.items.as_ref())
            .map(|items| items.as_slice())
            .unwrap_or_default()
            .iter()
            .filter(|b| b.path_pattern == pattern || format!("/{}", b.path_pattern) == pattern)
            .filter_map(|b| origins.iter().find(|o| o.id == b.target_origin_id))
            .any(|o| {
                is_bucket_origin(&o.domain_name, &config.bucket)
                    && o.origin_path.as_deref().unwrap_or("").is_empty()
            });
    Ok(Site {
        live,
        shared_assets,
    })
}

async fn read(
    cf: &Client,
    config: &FrontendConfig,
) -> Result<(aws_sdk_cloudfront::types::DistributionConfig, String)> {
    let out = cf
        .get_distribution_config()
        .id(&config.distribution_id)
        .send()
        .await
        .map_err(|e| {
            if e.as_service_error()
                .is_some_and(|s| s.is_no_such_distribution())
            {
                Error::refused(format!(
                    "CloudFront distribution {} does not exist: check [frontend].distribution_id",
                    config.distribution_id
                ))
            } else {
                aws(format!(
                    "reading CloudFront distribution {}",
                    config.distribution_id
                ))(e)
            }
        })?;
    let etag = out.e_tag().unwrap_or_default().to_string();
    let dist = out.distribution_config.ok_or_else(|| {
        Error::failed(format!(
            "distribution {} returned no config",
            config.distribution_id
        ))
    })?;
    Ok((dist, etag))
}

/// The site origin: the one the default cache behavior uses, which must be the bucket's.
fn origin_index(
    dist: &aws_sdk_cloudfront::types::DistributionConfig,
    config: &FrontendConfig,
) -> Result<usize> {
    let origins = dist
        .origins
        .as_ref()
        .map(|o| o.items.as_slice())
        .unwrap_or_default();
    let target = dist
        .default_cache_behavior
        .as_ref()
        .map(|b| b.target_origin_id.as_str())
        .unwrap_or_default();
    match origins.iter().position(|o| o.id == target) {
        Some(i) if is_bucket_origin(&origins[i].domain_name, &config.bucket) => Ok(i),
        Some(i) => Err(Error::refused(format!(
            "CloudFront distribution {}'s default behavior serves {} (origin {}), not S3 bucket {}: \
             point [frontend].bucket at the bucket the distribution serves",
            config.distribution_id, origins[i].domain_name, origins[i].id, config.bucket
        ))),
        None => Err(Error::refused(format!(
            "CloudFront distribution {} has no origin {target:?} for its default behavior",
            config.distribution_id
        ))),
    }
}

/// Points the distribution's S3 origin at `/releases/<id>`. Uses the ETag from the read in
/// `If-Match`; when another writer changed the distribution in between (412), reads again and
/// retries, at most 5 times.
pub async fn switch(cf: &Client, config: &FrontendConfig, id: &str) -> Result<()> {
    for attempt in 1..=5 {
        let (dist, etag) = read(cf, config).await?;
        if update(cf, config, id, dist, &etag).await? {
            return Ok(());
        }
        tracing::info!(
            "distribution {} changed while switching it (attempt {attempt}); reading it again",
            config.distribution_id
        );
    }
    Err(kept_changing(config))
}

/// The switch gave up: the distribution changed under it five times.
pub fn kept_changing(config: &FrontendConfig) -> Error {
    Error::failed(format!(
        "distribution {} kept changing while bgcloud switched it (5 tries): someone else is \
         editing it; try again",
        config.distribution_id
    ))
}

/// [`switch`] from a [`snapshot`] taken earlier, without reading again: false (nothing
/// changed) when the distribution changed since, so the caller can decide again from a new read.
pub async fn switch_unchanged_since(
    cf: &Client,
    config: &FrontendConfig,
    id: &str,
    snapshot: Snapshot,
) -> Result<bool> {
    update(cf, config, id, snapshot.dist, &snapshot.etag).await
}

/// One UpdateDistribution of `dist` (read with `etag`) with the site origin at `id`: false on
/// 412 (changed since it was read).
async fn update(
    cf: &Client,
    config: &FrontendConfig,
    id: &str,
    mut dist: aws_sdk_cloudfront::types::DistributionConfig,
    etag: &str,
) -> Result<bool> {
    let index = origin_index(&dist, config)?;
    if let Some(origins) = dist.origins.as_mut() {
        origins.items[index].origin_path = Some(origin_path(id));
    }
    let sent = cf
        .update_distribution()
        .id(&config.distribution_id)
        .if_match(etag)
        .distribution_config(dist)
        .send()
        .await;
    match sent {
        Ok(_) => Ok(true),
        Err(e) if e.code() == Some("PreconditionFailed") => Ok(false),
        Err(e) => Err(aws(format!(
            "switching distribution {} to release {id}",
            config.distribution_id
        ))(e)),
    }
}

/// A CallerReference no earlier call used: CloudFront answers a reused one with the
/// invalidation made for it the first time (nothing is invalidated again) or, for other paths,
/// InvalidationBatchAlreadyExists — and a release id comes back after prune. The SDK's own
/// retries resend the same request, so they stay idempotent.
fn caller_reference(label: &str) -> String {
    static CALLS: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    format!("{label}-{nanos}-{}-{call}", std::process::id())
}

/// What an invalidation path encodes: non-ASCII (always, by `percent_encoding`), controls,
/// space and RFC 1738's unsafe characters, which CloudFront refuses raw, plus `?`, which would
/// start a query string. Nothing else: a path encoded further no longer matches what viewers
/// request. `*` is kept as the wildcard.
const INVALIDATION_ENCODED: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}')
    .add(b'~');

/// A CloudFront invalidation path for a site path (`/caf%C3%A9/`), see [`INVALIDATION_ENCODED`].
pub fn invalidation_path(path: &str) -> String {
    utf8_percent_encode(path, INVALIDATION_ENCODED).to_string()
}

/// Starts an invalidation of `paths` (URL-encoded already); returns its id. `label` (the
/// release) begins its CallerReference, to find it in the console.
pub async fn invalidate(
    cf: &Client,
    config: &FrontendConfig,
    paths: &[String],
    label: &str,
) -> Result<String> {
    let batch = InvalidationBatch::builder()
        .paths(
            Paths::builder()
                .quantity(paths.len() as i32)
                .set_items(Some(paths.to_vec()))
                .build()
                .map_err(|e| Error::failed(format!("building the invalidation: {e}")))?,
        )
        .caller_reference(caller_reference(label))
        .build()
        .map_err(|e| Error::failed(format!("building the invalidation: {e}")))?;
    let out = cf
        .create_invalidation()
        .distribution_id(&config.distribution_id)
        .invalidation_batch(batch)
        .send()
        .await
        .map_err(aws(format!(
            "invalidating {} on distribution {}",
            paths.join(" "),
            config.distribution_id
        )))?;
    Ok(out
        .invalidation()
        .map(|i| i.id().to_string())
        .unwrap_or_default())
}

/// Polls the invalidation every `poll_interval` until `Completed`; returns the distribution's
/// status (`Deployed` once the config change reached every edge, else `InProgress`).
pub async fn wait(cf: &Client, config: &FrontendConfig, invalidation_id: &str) -> Result<String> {
    let deadline = Instant::now() + config.wait_timeout;
    let live = Waiting::start(format!("invalidation {invalidation_id}"), Some(deadline));
    loop {
        let out = cf
            .get_invalidation()
            .distribution_id(&config.distribution_id)
            .id(invalidation_id)
            .send()
            .await
            .map_err(aws(format!("reading invalidation {invalidation_id}")))?;
        let status = out
            .invalidation()
            .map(|i| i.status().to_string())
            .unwrap_or_default();
        if status.eq_ignore_ascii_case("completed") {
            break;
        }
        if Instant::now() + config.poll_interval > deadline {
            return Err(Error::failed(format!(
                "invalidation {invalidation_id} was still {status} after {}; the release is \
                 switched, but edges may serve cached HTML until it completes",
                humantime::format_duration(config.wait_timeout)
            )));
        }
        live.update(&status);
        tokio::time::sleep(config.poll_interval.max(Duration::from_millis(10))).await;
    }
    drop(live);
    let dist = cf
        .get_distribution()
        .id(&config.distribution_id)
        .send()
        .await
        .map_err(aws(format!(
            "reading distribution {}",
            config.distribution_id
        )))?;
    Ok(dist
        .distribution()
        .map(|d| d.status().to_string())
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_origins_are_recognised() {
        assert!(is_bucket_origin("shop-web.s3.amazonaws.com", "shop-web"));
        assert!(is_bucket_origin(
            "shop-web.s3.us-east-1.amazonaws.com",
            "shop-web"
        ));
        assert!(is_bucket_origin(
            "shop-web.s3-website-us-east-1.amazonaws.com",
            "shop-web"
        ));
        assert!(!is_bucket_origin(
            "shop-web-old.s3.amazonaws.com",
            "shop-web"
        ));
        assert!(!is_bucket_origin("api.example.com", "shop-web"));
    }

    #[test]
    fn caller_references_are_never_reused() {
        let a = caller_reference("r1");
        let b = caller_reference("r1");
        assert!(a.starts_with("r1-"), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn invalidation_paths_encode_unsafe_and_non_ascii_characters_only() {
        for (raw, encoded) in [
            ("/menu du jour.html", "/menu%20du%20jour.html"),
            ("/café/", "/caf%C3%A9/"),
            ("/c#.txt", "/c%23.txt"),
            ("/what?.txt", "/what%3F.txt"),
            ("/100%.txt", "/100%25.txt"),
            (
                "/a\"<>[\\]^`{|}~.txt",
                "/a%22%3C%3E%5B%5C%5D%5E%60%7B%7C%7D%7E.txt",
            ),
            ("/tab\there", "/tab%09here"),
            // Left alone: reserved characters that are fine in a path, and the wildcard.
            (
                "/a+b=c&d;e:f@g$h,i!j'k(l)m.txt",
                "/a+b=c&d;e:f@g$h,i!j'k(l)m.txt",
            ),
            ("/*", "/*"),
            ("/about/", "/about/"),
        ] {
            assert_eq!(invalidation_path(raw), encoded, "{raw}");
        }
    }
}
