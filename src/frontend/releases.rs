//! The releases in the site bucket as `frontend releases` lists them: the live one (from
//! CloudFront), the previous one (from the record), oldest first by when each was made.

use std::fmt;

use serde::Serialize;

use crate::aws::cloudfront;
use crate::config::FrontendConfig;
use crate::context::Context;
use crate::error::Result;
use crate::frontend::site;
use crate::state::record::{FrontendRecord, SiteRelease};

#[derive(Debug, Serialize)]
pub struct Releases {
    pub app: String,
    pub current: Option<String>,
    pub previous: Option<String>,
    pub releases: Vec<ReleaseRow>,
}

#[derive(Debug, Serialize)]
pub struct ReleaseRow {
    pub id: String,
    pub current: bool,
    pub previous: bool,
    #[serde(flatten)]
    pub recorded: Option<SiteRelease>,
}

impl fmt::Display for Releases {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.releases.is_empty() {
            return writeln!(f, "{}: no frontend releases yet", self.app);
        }
        for r in &self.releases {
            let mark = if r.current {
                "*"
            } else if r.previous {
                "-"
            } else {
                " "
            };
            write!(f, "{mark} {}", r.id)?;
            if let Some(rec) = &r.recorded {
                write!(
                    f,
                    "  {} files, {} uploaded, by {} at {}",
                    rec.files, rec.uploaded, rec.by, rec.at
                )?;
            }
            writeln!(
                f,
                "{}",
                if r.current {
                    "  (live)"
                } else if r.previous {
                    "  (previous)"
                } else {
                    ""
                }
            )?;
        }
        Ok(())
    }
}

/// Release ids in the bucket, the live one (from CloudFront) and the frontend record, together.
pub async fn snapshot(
    ctx: &Context,
    fe: &FrontendConfig,
) -> Result<(Vec<String>, cloudfront::Site, FrontendRecord)> {
    let store = ctx.store();
    let bucket_releases = async {
        let web = ctx.clients.buckets.get(&fe.bucket).await?;
        web.folders(site::RELEASES_PREFIX).await
    };
    let (ids, dist, record) = tokio::try_join!(
        bucket_releases,
        cloudfront::inspect(&ctx.clients.cloudfront, fe),
        store.read(),
    )?;
    let record = record.unwrap_or_default().frontend;
    // Oldest first by when each release was made (a custom --release-id says nothing about
    // time), then by id; releases bgcloud has no record of count as oldest.
    let mut ids = ids;
    let made = |id: &String| {
        record
            .releases
            .iter()
            .find(|r| &r.id == id)
            .map(|r| r.at.clone())
    };
    ids.sort_by_cached_key(|id| (made(id).unwrap_or_default(), id.clone()));
    Ok((ids, dist, record))
}

pub async fn list(ctx: &Context, fe: &FrontendConfig) -> Result<Releases> {
    let (ids, dist, record) = snapshot(ctx, fe).await?;
    let live = dist.live;
    let previous = record.previous.clone().filter(|p| Some(p) != live.as_ref());
    let releases = ids
        .into_iter()
        .rev()
        .map(|id| ReleaseRow {
            current: Some(&id) == live.as_ref(),
            previous: Some(&id) == previous.as_ref(),
            recorded: record.releases.iter().find(|r| r.id == id).cloned(),
            id,
        })
        .collect();
    Ok(Releases {
        app: ctx.config.app.clone(),
        current: live,
        previous,
        releases,
    })
}
