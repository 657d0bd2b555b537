//! Where each release's manifest is kept: beside the record in the state bucket
//! (`<prefix><app>/frontend/<id>.json`). The next release is diffed against it, rollback
//! invalidates what it lists, and prune keeps the shared assets the kept releases use.

use crate::aws::s3::object::{Condition, Object};
use crate::context::Context;
use crate::error::Result;
use crate::frontend::site::Manifest;

/// Where a release's manifest is kept: beside the record in the state bucket.
pub fn object(ctx: &Context, id: &str) -> Object {
    let key = format!(
        "{}{}/frontend/{id}.json",
        ctx.config.state.prefix, ctx.config.app
    );
    Object::new(ctx.clients.buckets.clone(), &ctx.config.state.bucket, key)
}

pub async fn load(ctx: &Context, id: &str) -> Result<Option<Manifest>> {
    let found = object(ctx, id).get().await?;
    Ok(found.and_then(|(bytes, _)| serde_json::from_slice(&bytes).ok()))
}

pub async fn save(ctx: &Context, manifest: &Manifest) -> Result<()> {
    let body = serde_json::to_vec(manifest).expect("manifest serializes");
    object(ctx, &manifest.id).put(body, Condition::None).await?;
    Ok(())
}
