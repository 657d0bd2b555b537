//! Percent-encoding of S3 keys for the two places they become URLs: S3's `x-amz-copy-source`
//! and CloudFront invalidation paths. The two keep different characters as they are.

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

/// A CloudFront invalidation path. CloudFront wants non-ASCII and RFC 1738's unsafe characters
/// encoded (it refuses a path with a raw space or non-ASCII character), plus `?`, which would
/// start a query string, and nothing else: a path encoded further no longer matches what
/// viewers request. `*` is kept as the wildcard.
pub fn invalidation_path(path: &str) -> String {
    percent_encode(path, |b| {
        b.is_ascii_graphic() && !br##""#%<>?[\]^`{|}~"##.contains(&b)
    })
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

    #[test]
    fn invalidation_paths_encode_unsafe_and_non_ascii_characters_only() {
        for (raw, encoded) in [
            ("/menu du jour.html", "/menu%20du%20jour.html"),
            ("/café/", "/caf%C3%A9/"),
            ("/c#.txt", "/c%23.txt"),
            ("/what?.txt", "/what%3F.txt"),
            ("/100%.txt", "/100%25.txt"),
            (
                "/a\"<>[\\]^`{|}~.txt",
                "/a%22%3C%3E%5B%5C%5D%5E%60%7B%7C%7D%7E.txt",
            ),
            ("/tab\there", "/tab%09here"),
            // Left alone: reserved characters that are fine in a path, and the wildcard.
            (
                "/a+b=c&d;e:f@g$h,i!j'k(l)m.txt",
                "/a+b=c&d;e:f@g$h,i!j'k(l)m.txt",
            ),
            ("/*", "/*"),
            ("/about/", "/about/"),
        ] {
            assert_eq!(invalidation_path(raw), encoded, "{raw}");
        }
    }
}
