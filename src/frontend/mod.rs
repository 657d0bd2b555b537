//! The frontend release: the site build on disk, what a release holds, and how it reaches the
//! bucket and CloudFront.

pub mod manifest;
pub mod prune;
pub mod release;
pub mod releases;
pub mod rollback;
pub mod site;
