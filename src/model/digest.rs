//! Image digests as people read them.

/// `sha256:` and the first 12 hex digits, the way docker shows image ids.
pub fn short_digest(digest: &str) -> &str {
    let end = digest
        .find(':')
        .map(|i| i + 13)
        .unwrap_or(12)
        .min(digest.len());
    &digest[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_is_cut_to_its_algorithm_and_12_hex_digits() {
        let d = format!("sha256:{}", "0123456789ab".repeat(6));
        assert_eq!(short_digest(&d), "sha256:0123456789ab");
        assert_eq!(short_digest("sha256:abc"), "sha256:abc");
        assert_eq!(short_digest("0123456789abcdef"), "0123456789ab");
    }
}
