//! Writing a release's files to a bucket: uploads (in parts above 16 MB) and server-side
//! copies (the source key percent-encoded), many at once. Every object bgcloud writes carries
//! its content's MD5 in metadata (`x-amz-meta-bgcloud-md5`), because the ETag is not the MD5 on
//! SSE-KMS buckets or for multipart uploads; [`Bucket::holding`] uses it to tell which objects
//! already hold a file.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, MetadataDirective};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{arn, failed, Bucket};
use crate::error::{Error, Result};

/// Files above this size go up in parts.
const MULTIPART_THRESHOLD: u64 = 16 * 1024 * 1024;
const PART_SIZE: usize = 8 * 1024 * 1024;
/// The user metadata key (`x-amz-meta-…`) holding the content's MD5, hex.
pub const MD5_METADATA: &str = "bgcloud-md5";

/// What a key in `x-amz-copy-source` encodes: everything but unreserved characters and `/`
/// (`+` too, which S3 would otherwise read as a space).
const COPY_SOURCE_ENCODED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// `key` as `x-amz-copy-source` wants it, see [`COPY_SOURCE_ENCODED`].
fn copy_source(key: &str) -> String {
    utf8_percent_encode(key, COPY_SOURCE_ENCODED).to_string()
}

/// A file on disk to store as an object: where it is and what the object carries.
pub trait LocalFile {
    fn local(&self) -> &Path;
    fn size(&self) -> u64;
    /// The content's MD5, hex: stored in the object's metadata ([`MD5_METADATA`]).
    fn md5(&self) -> &str;
    fn content_type(&self) -> &str;
    fn cache_control(&self) -> &str;
}

impl Bucket {
    fn needs_put(&self, key: &str) -> String {
        format!("s3:PutObject on {}", arn(&self.name, Some(key)))
    }

    /// Which of `wanted` (key, content MD5) are stored under `prefix` with that content. A
    /// matching ETag settles it from the listing alone (a single-part upload's ETag is its MD5,
    /// unless the bucket encrypts with SSE-KMS); otherwise the MD5 bgcloud stored in the
    /// object's metadata does (one HeadObject each). An object with neither is not trusted and
    /// gets written again.
    pub async fn holding(
        &self,
        prefix: &str,
        wanted: Vec<(String, String)>,
        concurrency: usize,
    ) -> Result<BTreeSet<String>> {
        let stored = self.list(prefix).await?;
        let mut same = BTreeSet::new();
        let mut unsure = Vec::new();
        for (key, md5) in wanted {
            match stored.get(&key) {
                Some(etag) if *etag == md5 => {
                    same.insert(key);
                }
                Some(_) => unsure.push((key, md5)),
                None => {}
            }
        }
        let bucket = self.clone();
        let checked = each(unsure, concurrency, move |(key, md5)| {
            let bucket = bucket.clone();
            async move {
                let stored = bucket.stored_md5(&key).await?;
                Ok((stored.as_deref() == Some(md5.as_str())).then_some(key))
            }
        })
        .await?;
        same.extend(checked.into_iter().flatten());
        Ok(same)
    }

    /// The content MD5 bgcloud stored with `key`, if any.
    async fn stored_md5(&self, key: &str) -> Result<Option<String>> {
        let sent = self
            .client
            .head_object()
            .bucket(&self.name)
            .key(key)
            .send()
            .await;
        match sent {
            Ok(out) => Ok(out.metadata().and_then(|m| m.get(MD5_METADATA)).cloned()),
            // Deleted since the listing: not there, so not the same.
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(failed(
                format!("reading the metadata of {}", self.url(key)),
                format!("s3:GetObject on {}", arn(&self.name, Some(key))),
            )(e)),
        }
    }

    /// Uploads `file` to `key` with its Content-Type, Cache-Control and MD5.
    pub async fn upload(&self, key: &str, file: &impl LocalFile) -> Result<()> {
        if file.size() > MULTIPART_THRESHOLD {
            return self.upload_in_parts(key, file).await;
        }
        let doing = format!("uploading {} to {}", file.local().display(), self.url(key));
        let body = ByteStream::from_path(file.local())
            .await
            .map_err(|e| Error::failed(format!("{doing}: {e}")))?;
        self.client
            .put_object()
            .bucket(&self.name)
            .key(key)
            .content_type(file.content_type())
            .cache_control(file.cache_control())
            .metadata(MD5_METADATA, file.md5())
            .body(body)
            .send()
            .await
            .map_err(failed(doing, self.needs_put(key)))?;
        Ok(())
    }

    async fn upload_in_parts(&self, key: &str, file: &impl LocalFile) -> Result<()> {
        let doing = format!(
            "uploading {} to {} in parts",
            file.local().display(),
            self.url(key)
        );
        let data =
            std::fs::read(file.local()).map_err(|e| Error::failed(format!("{doing}: {e}")))?;
        let started = self
            .client
            .create_multipart_upload()
            .bucket(&self.name)
            .key(key)
            .content_type(file.content_type())
            .cache_control(file.cache_control())
            .metadata(MD5_METADATA, file.md5())
            .send()
            .await
            .map_err(failed(&doing, self.needs_put(key)))?;
        let upload_id = started.upload_id().unwrap_or_default().to_string();
        let mut parts = Vec::new();
        for (i, chunk) in data.chunks(PART_SIZE).enumerate() {
            let number = i as i32 + 1;
            let part = self
                .client
                .upload_part()
                .bucket(&self.name)
                .key(key)
                .upload_id(&upload_id)
                .part_number(number)
                .body(ByteStream::from(chunk.to_vec()))
                .send()
                .await;
            match part {
                Ok(p) => parts.push(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(p.e_tag().map(str::to_string))
                        .build(),
                ),
                Err(e) => {
                    // Unfinished parts are billed as storage until aborted.
                    let _ = self
                        .client
                        .abort_multipart_upload()
                        .bucket(&self.name)
                        .key(key)
                        .upload_id(&upload_id)
                        .send()
                        .await;
                    return Err(failed(&doing, self.needs_put(key))(e));
                }
            }
        }
        self.client
            .complete_multipart_upload()
            .bucket(&self.name)
            .key(key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(failed(&doing, self.needs_put(key)))?;
        Ok(())
    }

    /// Server-side copy of `source` (same bucket) to `key`; headers and the MD5 are set anew
    /// in case the rules changed since `source` was written.
    pub async fn copy(&self, source: &str, key: &str, file: &impl LocalFile) -> Result<()> {
        self.client
            .copy_object()
            .bucket(&self.name)
            .key(key)
            .copy_source(format!("{}/{}", self.name, copy_source(source)))
            .metadata_directive(MetadataDirective::Replace)
            .content_type(file.content_type())
            .cache_control(file.cache_control())
            .metadata(MD5_METADATA, file.md5())
            .send()
            .await
            .map_err(failed(
                format!("copying {} to {key}", self.url(source)),
                format!(
                    "s3:GetObject on {} and {}",
                    arn(&self.name, Some(source)),
                    self.needs_put(key)
                ),
            ))?;
        Ok(())
    }
}

/// Runs `work` on every item, at most `limit` at once, and returns the results in the order
/// they finished. The first error ends it; the tasks still running are dropped.
pub async fn each<T, R, Fut>(items: Vec<T>, limit: usize, work: impl Fn(T) -> Fut) -> Result<Vec<R>>
where
    T: Send + 'static,
    R: Send + 'static,
    Fut: Future<Output = Result<R>> + Send + 'static,
{
    let semaphore = Arc::new(Semaphore::new(limit.max(1)));
    let mut tasks = JoinSet::new();
    let mut results = Vec::with_capacity(items.len());
    let joined = |j: std::result::Result<Result<R>, tokio::task::JoinError>| {
        j.map_err(|e| Error::failed(format!("an S3 transfer task failed: {e}")))?
    };
    for item in items {
        let permit = semaphore
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let job = work(item);
        tasks.spawn(async move {
            let _permit = permit;
            job.await
        });
        while let Some(done) = tasks.try_join_next() {
            results.push(joined(done)?);
        }
    }
    while let Some(done) = tasks.join_next().await {
        results.push(joined(done)?);
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_sources_keep_only_unreserved_characters_and_slashes() {
        assert_eq!(
            copy_source("releases/r1/assets/a b+c.js"),
            "releases/r1/assets/a%20b%2Bc.js"
        );
        assert_eq!(copy_source("releases/r1/é.txt"), "releases/r1/%C3%A9.txt");
    }
}
