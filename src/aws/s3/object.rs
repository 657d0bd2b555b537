//! One JSON-sized S3 object with the conditional operations the lock, the record and the
//! release manifests need: read with its ETag, create-only or replace-this-version writes,
//! delete-this-version.

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;

use super::{arn, failed, is_denied, Bucket, Buckets};
use crate::error::{aws, Error, Result};

/// What a write requires of the object as stored.
#[derive(Debug, Clone, Copy)]
pub enum Condition<'a> {
    /// Write whatever is there.
    None,
    /// Only if it does not exist (`If-None-Match: *`).
    Absent,
    /// Only if it is still this version (`If-Match: <etag>`).
    Version(&'a str),
}

pub struct Object {
    buckets: Buckets,
    bucket: String,
    key: String,
}

impl Object {
    /// Makes no request: the bucket's region is found on first use.
    pub fn new(buckets: Buckets, bucket: &str, key: String) -> Object {
        Object {
            buckets,
            bucket: bucket.to_string(),
            key,
        }
    }

    pub fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }

    async fn bucket(&self) -> Result<Bucket> {
        self.buckets.get(&self.bucket).await
    }

    fn needs(&self, action: &str) -> String {
        format!("{action} on {}", arn(&self.bucket, Some(&self.key)))
    }

    /// The body and ETag, or `None` when there is no such object.
    pub async fn get(&self) -> Result<Option<(Vec<u8>, String)>> {
        let bucket = self.bucket().await?;
        let sent = bucket
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .send()
            .await;
        let out = match sent {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            // Without s3:ListBucket, S3 answers 403 rather than 404 for a key that is not there
            // (a first run's record, a release's manifest), so a 403 is either.
            Err(e) if is_denied(&e) => {
                return Err(Error::failed(format!(
                    "reading {}: no access, or the object does not exist: the role needs \
                     s3:ListBucket on {} (without it S3 answers 403 for a missing key) and {}",
                    self.location(),
                    arn(&self.bucket, None),
                    self.needs("s3:GetObject")
                )))
            }
            Err(e) => return Err(aws(format!("reading {}", self.location()))(e)),
        };
        let etag = out.e_tag().unwrap_or_default().to_string();
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| Error::failed(format!("reading {}: {e}", self.location())))?
            .into_bytes();
        Ok(Some((bytes.to_vec(), etag)))
    }

    /// Writes `body` as JSON under `condition`. The new version's ETag, or `None` when the
    /// condition failed: someone else created or changed the object first.
    pub async fn put(&self, body: Vec<u8>, condition: Condition<'_>) -> Result<Option<String>> {
        self.put_typed(body, "application/json", condition).await
    }

    /// [`Object::put`] with another content type.
    pub async fn put_typed(
        &self,
        body: Vec<u8>,
        content_type: &str,
        condition: Condition<'_>,
    ) -> Result<Option<String>> {
        let bucket = self.bucket().await?;
        let put = bucket
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .content_type(content_type)
            .body(ByteStream::from(body));
        let put = match condition {
            Condition::None => put,
            Condition::Absent => put.if_none_match("*"),
            Condition::Version(etag) => put.if_match(etag),
        };
        match put.send().await {
            Ok(out) => Ok(Some(out.e_tag().unwrap_or_default().to_string())),
            Err(e) if is_conflict(e.code(), e.raw_response().map(|r| r.status().as_u16())) => {
                Ok(None)
            }
            Err(e) => Err(failed(
                format!("writing {}", self.location()),
                self.needs("s3:PutObject"),
            )(e)),
        }
    }

    /// Deletes the object whatever version it is.
    pub async fn delete(&self) -> Result<()> {
        let bucket = self.bucket().await?;
        bucket
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .send()
            .await
            .map_err(failed(
                format!("deleting {}", self.location()),
                self.needs("s3:DeleteObject"),
            ))?;
        Ok(())
    }

    /// Deletes the object only if it is still the version with `etag` (`If-Match`). Ok(false)
    /// when it is not: someone else replaced or deleted it.
    ///
    /// An endpoint that does not implement the condition on DeleteObject (LocalStack Community
    /// answers 501 NotImplemented; AWS has it since 2024) gets it emulated: the object is read,
    /// and deleted without the condition only if it is still that version. Between the read and
    /// the delete another writer could replace it (a race of one round trip, which the real
    /// condition does not have); a 412 from an endpoint that does implement it still means
    /// "not this version, leave it".
    pub async fn delete_version(&self, etag: &str) -> Result<bool> {
        if etag.is_empty() {
            // An empty If-Match would be no condition at all.
            return Err(Error::failed(format!(
                "cannot delete {} conditionally: S3 sent no ETag when it was written",
                self.location()
            )));
        }
        let bucket = self.bucket().await?;
        let sent = bucket
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .if_match(etag)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(true),
            // 412: another version; 404: gone (with If-Match, S3 does not answer 204 for that).
            Err(e) if is_conflict(e.code(), e.raw_response().map(|r| r.status().as_u16())) => {
                Ok(false)
            }
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(false),
            Err(e)
                if e.code() == Some("NotImplemented")
                    || e.raw_response().is_some_and(|r| r.status().as_u16() == 501) =>
            {
                tracing::info!(
                    "this endpoint does not implement conditional deletes (DeleteObject with \
                     If-Match): {} is read and deleted only if it is still this run's version",
                    self.location()
                );
                match self.get().await? {
                    Some((_, current)) if current == etag => {
                        self.delete().await?;
                        Ok(true)
                    }
                    _ => Ok(false),
                }
            }
            Err(e) => Err(failed(
                format!("deleting {}", self.location()),
                format!(
                    "{} and s3:GetObject (a conditional delete reads the ETag)",
                    self.needs("s3:DeleteObject")
                ),
            )(e)),
        }
    }
}

/// A lost compare-and-swap: 412 Precondition Failed, or 409 when a concurrent conditional
/// write is still in progress.
fn is_conflict(code: Option<&str>, status: Option<u16>) -> bool {
    matches!(
        code,
        Some("PreconditionFailed" | "ConditionalRequestConflict")
    ) || matches!(status, Some(412 | 409))
}
