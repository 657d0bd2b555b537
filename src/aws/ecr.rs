//! Resolves an image tag (or digest) in ECR to a digest: bgcloud deploys by digest, so every
//! instance runs exactly the same image even if the tag moves.

use aws_sdk_ecr::types::ImageIdentifier;
use aws_sdk_ecr::Client;

use crate::error::{aws, Error, Result};

/// What the user asked for on `--image`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    Tag(String),
    Digest(String),
}

impl ImageRef {
    /// A tag (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`) or `sha256:` and 64 hex digits.
    pub fn parse(s: &str) -> Result<ImageRef> {
        if let Some(hex) = s.strip_prefix("sha256:") {
            if hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Ok(ImageRef::Digest(s.to_string()));
            }
            return Err(Error::refused(format!(
                "--image {s:?} is not a valid digest: sha256: followed by 64 lowercase hex digits"
            )));
        }
        let mut bytes = s.bytes();
        let first_ok = bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
        if first_ok
            && s.len() <= 128
            && bytes.all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        {
            return Ok(ImageRef::Tag(s.to_string()));
        }
        Err(Error::refused(format!(
            "--image {s:?} is not an image tag or digest: give the tag only (e.g. v1.4.2, \
             letters, digits, '_', '.', '-'), or sha256:<digest>; the repository comes from the config"
        )))
    }
}

/// An image resolved in ECR.
#[derive(Debug, Clone)]
pub struct Image {
    /// What was asked for, for the record: the tag, or the digest.
    pub reference: String,
    pub digest: String,
    /// `ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPOSITORY`.
    pub repository_uri: String,
}

pub async fn resolve(ecr: &Client, repository: &str, image: &ImageRef) -> Result<Image> {
    let repos = ecr
        .describe_repositories()
        .repository_names(repository)
        .send()
        .await
        .map_err(|e| {
            if e.as_service_error()
                .is_some_and(|s| s.is_repository_not_found_exception())
            {
                Error::refused(format!(
                    "ECR repository {repository:?} does not exist in this account and region: \
                     check [backend].repository and --region"
                ))
            } else {
                aws(format!("reading ECR repository {repository}"))(e)
            }
        })?;
    let repository_uri = repos
        .repositories()
        .first()
        .and_then(|r| r.repository_uri())
        .ok_or_else(|| Error::failed(format!("ECR returned no URI for repository {repository}")))?
        .to_string();
    let (id, reference) = match image {
        ImageRef::Tag(t) => (ImageIdentifier::builder().image_tag(t).build(), t.clone()),
        ImageRef::Digest(d) => (
            ImageIdentifier::builder().image_digest(d).build(),
            d.clone(),
        ),
    };
    let found = ecr
        .describe_images()
        .repository_name(repository)
        .image_ids(id)
        .send()
        .await;
    let digest = match found {
        Ok(out) => out
            .image_details()
            .first()
            .and_then(|d| d.image_digest())
            .map(str::to_string),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_image_not_found_exception()) =>
        {
            None
        }
        Err(e) => {
            return Err(aws(format!(
                "looking up {reference} in ECR repository {repository}"
            ))(e))
        }
    };
    match digest {
        Some(digest) => Ok(Image {
            reference,
            digest,
            repository_uri,
        }),
        None => {
            let newest = newest_tags(ecr, repository, 5).await?;
            let hint = if newest.is_empty() {
                "the repository has no tagged images; push one first".to_string()
            } else {
                format!("newest tags: {}", newest.join(", "))
            };
            Err(Error::refused(format!(
                "image {reference} is not in ECR repository {repository} ({hint})"
            )))
        }
    }
}

/// The `n` most recently pushed tags of a repository, newest first.
async fn newest_tags(ecr: &Client, repository: &str, n: usize) -> Result<Vec<String>> {
    let mut images = Vec::new();
    let mut pages = ecr
        .describe_images()
        .repository_name(repository)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(aws(format!(
            "listing images of ECR repository {repository}"
        )))?;
        for d in page.image_details() {
            let pushed = d.image_pushed_at().map(|t| t.secs()).unwrap_or(0);
            for tag in d.image_tags() {
                images.push((pushed, tag.clone()));
            }
        }
    }
    images.sort_by(|a, b| b.cmp(a));
    Ok(images.into_iter().take(n).map(|(_, t)| t).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_digests_parse() {
        assert_eq!(
            ImageRef::parse("v1.4.2").unwrap(),
            ImageRef::Tag("v1.4.2".into())
        );
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(ImageRef::parse(&d).unwrap(), ImageRef::Digest(d.clone()));
        for bad in [
            "",
            "-v1",
            "shop-api:v1",
            "v1 ",
            "a;b",
            "sha256:xyz",
            "$(id)",
            &"x".repeat(129),
        ] {
            let e = ImageRef::parse(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}");
        }
    }
}
