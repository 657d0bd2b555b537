//! S3 as bgcloud uses it. Every bucket is reached through a client for its own region, found
//! once per run ([`Buckets`]); [`object`] has the conditional single-object operations of the
//! lock, the record and the manifests; [`transfer`] writes release files. A 403 names the
//! permission the role lacks.

pub mod object;
pub mod transfer;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;
use std::sync::{Arc, Mutex};

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::Region;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use aws_sdk_s3::Client;
use tokio::sync::OnceCell;

use crate::error::{aws, Error, Result};

/// Hands out a [`Bucket`] per bucket name. S3 answers a request signed for another region than
/// the bucket's with a redirect that the SDK does not follow, so each bucket's region is asked
/// once per run (HeadBucket), and buckets of one region share a client.
#[derive(Clone, Debug)]
pub struct Buckets {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Signs for the config's region; asks buckets where they are.
    home: Client,
    buckets: Mutex<HashMap<String, Arc<OnceCell<Bucket>>>>,
    clients: Mutex<HashMap<String, Client>>,
}

impl Buckets {
    /// Nothing is asked until a bucket is first used: a bad config still fails before any
    /// request.
    pub fn new(home: Client) -> Buckets {
        Buckets {
            inner: Arc::new(Inner {
                home,
                buckets: Mutex::default(),
                clients: Mutex::default(),
            }),
        }
    }

    /// The bucket `name` with a client for its region.
    pub async fn get(&self, name: &str) -> Result<Bucket> {
        let cell = self
            .inner
            .buckets
            .lock()
            .expect("bucket cache")
            .entry(name.to_string())
            .or_default()
            .clone();
        // Concurrent first uses of one bucket wait for the same HeadBucket.
        let bucket = cell
            .get_or_try_init(|| async {
                let region = find_region(&self.inner.home, name).await?;
                tracing::debug!("S3 bucket {name} is in {region}");
                Ok::<_, Error>(Bucket {
                    name: name.to_string(),
                    client: self.client_for(&region),
                    region,
                })
            })
            .await?;
        Ok(bucket.clone())
    }

    fn client_for(&self, region: &str) -> Client {
        let home = &self.inner.home;
        if home.config().region().map(Region::as_ref) == Some(region) {
            return home.clone();
        }
        let mut clients = self.inner.clients.lock().expect("client cache");
        clients
            .entry(region.to_string())
            .or_insert_with(|| {
                // Same credentials, endpoint and path style; only the signing region differs.
                let config = home
                    .config()
                    .to_builder()
                    .region(Region::new(region.to_string()))
                    .build();
                Client::from_conf(config)
            })
            .clone()
    }
}

/// The region `bucket` is in: HeadBucket's `x-amz-bucket-region`, which S3 sends with a
/// success and with the 301 (or 400) that a request signed for another region gets.
async fn find_region(home: &Client, bucket: &str) -> Result<String> {
    let asked_in = home.config().region().map(ToString::to_string);
    let err = match home.head_bucket().bucket(bucket).send().await {
        Ok(out) => {
            return Ok(out
                .bucket_region()
                .map(str::to_string)
                .or(asked_in)
                .unwrap_or_default())
        }
        Err(e) => e,
    };
    let raw = err.raw_response();
    if let Some(region) = raw.and_then(|r| r.headers().get("x-amz-bucket-region")) {
        return Ok(region.to_string());
    }
    match raw.map(|r| r.status().as_u16()) {
        Some(404) => Err(Error::refused(format!(
            "S3 bucket {bucket} does not exist: check the bucket names in the config \
             ([state].bucket, [frontend].bucket)"
        ))),
        Some(403) => Err(Error::failed(format!(
            "no access to S3 bucket {bucket}: the role needs s3:ListBucket on {} (HeadBucket \
             finds the bucket's region)",
            arn(bucket, None)
        ))),
        _ => Err(aws(format!("finding the region of S3 bucket {bucket}"))(
            err,
        )),
    }
}

/// The IAM resource of a bucket, or of one of its objects.
pub fn arn(bucket: &str, key: Option<&str>) -> String {
    match key {
        Some(key) => format!("arn:aws:s3:::{bucket}/{key}"),
        None => format!("arn:aws:s3:::{bucket}"),
    }
}

/// Whether S3 said 403: the role lacks a permission (or, for a read without s3:ListBucket,
/// the key does not exist).
pub fn is_denied<E>(e: &SdkError<E, HttpResponse>) -> bool {
    e.raw_response().is_some_and(|r| r.status().as_u16() == 403)
}

/// Wraps an S3 error with what bgcloud was doing; a 403 says which permission is missing
/// (`needs`, e.g. "s3:PutObject on arn:aws:s3:::web/*").
pub fn failed<E>(
    doing: impl Display,
    needs: impl Display,
) -> impl FnOnce(SdkError<E, HttpResponse>) -> Error
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
{
    move |e| {
        if is_denied(&e) {
            Error::failed(format!("{doing}: access denied: the role needs {needs}"))
        } else {
            aws(doing)(e)
        }
    }
}

/// One bucket, with a client that signs for its region.
#[derive(Clone, Debug)]
pub struct Bucket {
    name: String,
    region: String,
    client: Client,
}

impl Bucket {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// `s3://bucket/key`, for messages.
    pub fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.name)
    }

    /// The error of a failed listing under `prefix`.
    fn listing_failed<E>(&self, prefix: &str) -> impl FnOnce(SdkError<E, HttpResponse>) -> Error
    where
        E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
    {
        failed(
            format!("listing {}", self.url(prefix)),
            format!("s3:ListBucket on {}", arn(&self.name, None)),
        )
    }

    /// Hands every page of the listing under `prefix` to `each`; with `delimiter`, keys are
    /// grouped into common prefixes at it.
    async fn pages(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
        mut each: impl FnMut(ListObjectsV2Output),
    ) -> Result<()> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.name)
            .prefix(prefix)
            .set_delimiter(delimiter.map(str::to_string))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            each(page.map_err(self.listing_failed(prefix))?);
        }
        Ok(())
    }

    /// Keys and ETags (unquoted) of the objects under `prefix`.
    pub async fn list(&self, prefix: &str) -> Result<BTreeMap<String, String>> {
        let mut found = BTreeMap::new();
        self.pages(prefix, None, |page| {
            for o in page.contents() {
                if let Some(key) = o.key() {
                    let etag = o.e_tag().unwrap_or_default().trim_matches('"');
                    found.insert(key.to_string(), etag.to_string());
                }
            }
        })
        .await?;
        Ok(found)
    }

    /// The names of the "folders" directly under `prefix` (which ends in `/`), sorted.
    pub async fn folders(&self, prefix: &str) -> Result<Vec<String>> {
        let mut names = Vec::new();
        self.pages(prefix, Some("/"), |page| {
            for p in page.common_prefixes() {
                if let Some(name) = p
                    .prefix()
                    .and_then(|p| p.strip_prefix(prefix))
                    .and_then(|p| p.strip_suffix('/'))
                {
                    names.push(name.to_string());
                }
            }
        })
        .await?;
        names.sort();
        Ok(names)
    }

    /// Whether anything is stored under `prefix`.
    pub async fn has_any(&self, prefix: &str) -> Result<bool> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(&self.name)
            .prefix(prefix)
            .max_keys(1)
            .send()
            .await
            .map_err(self.listing_failed(prefix))?;
        Ok(out.key_count().unwrap_or(0) > 0)
    }

    /// Deletes `keys`, 1,000 per request; returns how many. Stops at the first request with a
    /// failed key.
    pub async fn delete(&self, keys: &[String]) -> Result<usize> {
        for chunk in keys.chunks(1000) {
            let ids: Vec<ObjectIdentifier> = chunk
                .iter()
                .filter_map(|k| ObjectIdentifier::builder().key(k).build().ok())
                .collect();
            let delete = Delete::builder()
                .set_objects(Some(ids))
                .quiet(true)
                .build()
                .map_err(|e| Error::failed(format!("building the delete: {e}")))?;
            let out = self
                .client
                .delete_objects()
                .bucket(&self.name)
                .delete(delete)
                .send()
                .await
                .map_err(failed(
                    format!("deleting objects in s3://{}", self.name),
                    format!("s3:DeleteObject on {}", arn(&self.name, Some("*"))),
                ))?;
            // Quiet mode reports only failures, inside a 200 answer.
            if let Some(e) = out.errors().first() {
                return Err(Error::failed(format!(
                    "could not delete {} ({}: {}) and {} more; nothing else was deleted after it",
                    self.url(e.key().unwrap_or_default()),
                    e.code().unwrap_or_default(),
                    e.message().unwrap_or_default(),
                    out.errors().len() - 1
                )));
            }
        }
        Ok(keys.len())
    }
}
