//! What bgcloud keeps in the state bucket: the deployment record, the deployment lock, and each
//! colour's desired state (the launch script instances that boot later run).

pub mod desired;
pub mod lock;
pub mod record;
