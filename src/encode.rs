//! Percent-encoding of S3 keys where they become part of a URL: S3's `x-amz-copy-source`.

/// `text` with every byte outside `keep` as `%XX`.
fn percent_encode(text: &str, keep: impl Fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if keep(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A key for `x-amz-copy-source`: everything but unreserved characters and `/` encoded (`+`
/// too, which S3 would otherwise read as a space).
pub fn copy_source(key: &str) -> String {
    percent_encode(key, |b| b.is_ascii_alphanumeric() || b"-_.~/".contains(&b))
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
