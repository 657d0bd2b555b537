//! The static site on disk: walking the build output, content hashes, Content-Type and
//! Cache-Control per file, and the diff against the live release (pure logic, no AWS).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use walkdir::WalkDir;

use crate::aws::cloudfront::invalidation_path;
use crate::aws::s3::transfer::LocalFile;
use crate::config::FrontendConfig;
use crate::error::{Error, Result};

/// One file of the build.
#[derive(Debug, Clone)]
pub struct SiteFile {
    /// Path relative to the build folder, with `/` separators: the S3 key below the release.
    pub path: String,
    pub local: PathBuf,
    pub size: u64,
    /// MD5 of the content, hex: compared with the live release and with the MD5 stored with
    /// each object, never mtimes or S3 ETags (not MD5s for multipart uploads or SSE-KMS).
    pub md5: String,
    pub content_type: Cow<'static, str>,
    pub cache_control: String,
    pub hashed: bool,
}

impl LocalFile for SiteFile {
    fn local(&self) -> &Path {
        &self.local
    }
    fn size(&self) -> u64 {
        self.size
    }
    fn md5(&self) -> &str {
        &self.md5
    }
    fn content_type(&self) -> &str {
        &self.content_type
    }
    fn cache_control(&self) -> &str {
        &self.cache_control
    }
}

impl SiteFile {
    pub fn is_html(&self) -> bool {
        self.content_type.starts_with("text/html")
    }
}

/// What a release contains, kept in the state bucket beside the record: the diff of the next
/// release is computed against it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub id: String,
    /// Hash over all paths and MD5s: equal trees have equal digests.
    pub digest: String,
    /// Hashed assets were stored once at the bucket root (shared), not under the release.
    #[serde(default)]
    pub shared_assets: bool,
    pub files: BTreeMap<String, ManifestEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestEntry {
    pub md5: String,
    pub size: u64,
    pub hashed: bool,
}

/// Content-Type by extension: bgcloud's own list first, then `mime_guess`'s, else
/// octet-stream. Any `text/*` type gets `; charset=utf-8`, as the listed ones do: a build's text
/// files are UTF-8 (bundlers and site generators write nothing else), and a browser that gets
/// `text/*` without a charset falls back to its locale's legacy encoding (windows-1252 in much
/// of the world), so a `.csv` or `.md` with an `é` would show garbled.
pub fn content_type(path: &str) -> Cow<'static, str> {
    let ext = path
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    if let Some(listed) = listed_type(&ext) {
        return Cow::Borrowed(listed);
    }
    match mime_guess::from_ext(&ext).first_raw() {
        Some(text) if text.starts_with("text/") => Cow::Owned(format!("{text}; charset=utf-8")),
        Some(other) => Cow::Borrowed(other),
        None => Cow::Borrowed("application/octet-stream"),
    }
}

/// What a web build is mostly made of. Kept although `mime_guess` knows most of these: it
/// answers `.mjs` application/javascript, `.map` text/plain, `.woff` application/font-woff and
/// `.xml` text/xml, knows no `.cjs`, and adds no charset; these are the answers browsers and
/// CloudFront have been getting, and a change of table upstream must not change them.
fn listed_type(ext: &str) -> Option<&'static str> {
    Some(match ext {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" | "cjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "wasm" => "application/wasm",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "ttf" => "font/ttf",
        "txt" => "text/plain; charset=utf-8",
        "xml" => "application/xml",
        "ico" => "image/x-icon",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "pdf" => "application/pdf",
        _ => return None,
    })
}

/// Whether `path` is a content-hashed asset: anything but HTML under `hashed_dir`. Vite (and
/// most bundlers) put only content-hashed output there — `index-BxK3f9a2.js`, and with Rollup 4
/// url-safe hashes such as `index-aD-elAj9.js` that no name pattern recognises reliably — so the
/// folder, not the name, decides. Such files are cached as immutable and, with a shared asset
/// store, stored once at the bucket root.
pub fn is_hashed(path: &str, hashed_dir: &str) -> bool {
    !hashed_dir.is_empty() && path.starts_with(hashed_dir) && !path.ends_with(".html")
}

/// Walks the build folder. Refuses (exit 2) a missing or empty folder, or one without
/// `index.html` at its top.
pub fn scan(dir: &Path, config: &FrontendConfig) -> Result<Vec<SiteFile>> {
    if !dir.is_dir() {
        return Err(Error::refused(format!(
            "{} is not a folder: build the site first (e.g. `npm run build`) or pass the build folder",
            dir.display()
        )));
    }
    let mut files = walk(dir, config)?;
    if files.is_empty() {
        return Err(Error::refused(format!(
            "{} is empty: build the site first (e.g. `npm run build`)",
            dir.display()
        )));
    }
    match files.iter().find(|f| f.path == "index.html") {
        None => {
            return Err(Error::refused(format!(
                "{} has no index.html at its top: is it the build output (e.g. web/dist), not the source?",
                dir.display()
            )))
        }
        Some(index) if index.size == 0 => {
            return Err(Error::refused(format!(
                "{} is empty (0 bytes): every visitor would get a blank page; check the build",
                index.local.display()
            )))
        }
        Some(_) => {}
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// Every file under `root`, refusing what must not be published. Symlinks are not followed
/// (a linked folder can loop, a link can lead out of the build): each is checked by
/// [`check_link`] and read as the file it points at. Sorted by name, so that of several problems
/// the same one is named on every run.
fn walk(root: &Path, config: &FrontendConfig) -> Result<Vec<SiteFile>> {
    let mut out = Vec::new();
    let entries = WalkDir::new(root)
        .min_depth(1)
        .follow_links(false)
        .sort_by_file_name();
    for entry in entries {
        let entry = entry.map_err(|e| unreadable(root, &e))?;
        let kind = entry.file_type();
        if kind.is_dir() {
            continue;
        }
        let local = entry.into_path();
        if kind.is_symlink() {
            check_link(root, &local)?;
        }
        let rel = local.strip_prefix(root).expect("below root");
        let path = rel
            .components()
            .map(|c| {
                c.as_os_str().to_str().map(str::to_string).ok_or_else(|| {
                    Error::refused(format!(
                        "{} has a name that is not UTF-8: S3 keys and URLs are UTF-8; rename it",
                        local.display()
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?
            .join("/");
        // S3 keys are at most 1,024 bytes, and the release's prefix comes first.
        if path.len() > MAX_PATH {
            return Err(Error::refused(format!(
                "{} is {} bytes long as a path; S3 keys take at most 1,024 bytes with the release \
                 prefix: shorten it to {MAX_PATH} bytes",
                local.display(),
                path.len()
            )));
        }
        if path.split('/').any(|part| part == ".DS_Store") {
            continue;
        }
        let bytes = std::fs::read(&local)
            .map_err(|e| Error::refused(format!("cannot read {}: {e}", local.display())))?;
        let hashed = is_hashed(&path, &config.hashed_dir);
        out.push(SiteFile {
            content_type: content_type(&path),
            cache_control: if hashed {
                config.cache_control_hashed.clone()
            } else {
                config.cache_control_other.clone()
            },
            md5: format!("{:x}", md5::compute(&bytes)),
            size: bytes.len() as u64,
            hashed,
            path,
            local,
        });
    }
    Ok(out)
}

/// A walk error in the words bgcloud used before walkdir, which reports a folder it cannot open
/// and an entry it cannot inspect alike: "cannot read" the one, the other named bare. An error
/// reading a folder's entries names no path; the build folder stands for it.
fn unreadable(root: &Path, error: &walkdir::Error) -> Error {
    let path = error.path().unwrap_or(root);
    let why = match error.io_error() {
        Some(io) => io.to_string(),
        None => error.to_string(),
    };
    if path.is_dir() {
        Error::refused(format!("cannot read {}: {why}", path.display()))
    } else {
        Error::refused(format!("{}: {why}", path.display()))
    }
}

/// The longest path a file may have under the build folder: S3's 1,024-byte key limit, less
/// `releases/<id>/` with the longest release id.
const MAX_PATH: usize = 1024 - 100;

/// A symlink in the build is followed only to a file inside the build folder: one leading out
/// of it would publish whatever it points at.
fn check_link(root: &Path, link: &Path) -> Result<()> {
    let target = std::fs::canonicalize(link).map_err(|e| {
        Error::refused(format!(
            "{} is a symlink that cannot be followed ({e}): remove it from the build",
            link.display()
        ))
    })?;
    let root = std::fs::canonicalize(root)
        .map_err(|e| Error::refused(format!("cannot read {}: {e}", root.display())))?;
    if !target.starts_with(&root) {
        return Err(Error::refused(format!(
            "{} is a symlink to {}, outside the build folder: bgcloud publishes only the build; \
             copy the file in or remove the link. Nothing was uploaded",
            link.display(),
            target.display()
        )));
    }
    if target.is_dir() {
        return Err(Error::refused(format!(
            "{} is a symlink to a folder: bgcloud does not follow those (they can loop); copy the \
             folder into the build instead",
            link.display()
        )));
    }
    Ok(())
}

/// Where releases live in the site bucket, one folder each.
pub const RELEASES_PREFIX: &str = "releases/";

/// The S3 key prefix of a release; CloudFront's site origin path is `/releases/<id>`.
pub fn release_prefix(id: &str) -> String {
    format!("{RELEASES_PREFIX}{id}/")
}

/// The manifest of a scanned tree, under `id`.
pub fn manifest(id: &str, files: &[SiteFile], shared_assets: bool) -> Manifest {
    Manifest {
        id: id.to_string(),
        digest: tree_digest(files),
        shared_assets,
        files: files
            .iter()
            .map(|f| {
                (
                    f.path.clone(),
                    ManifestEntry {
                        md5: f.md5.clone(),
                        size: f.size,
                        hashed: f.hashed,
                    },
                )
            })
            .collect(),
    }
}

/// MD5 over every path and content MD5, in path order.
pub fn tree_digest(files: &[SiteFile]) -> String {
    let mut ctx = md5::Context::new();
    for f in files {
        ctx.consume(f.path.as_bytes());
        ctx.consume([0]);
        ctx.consume(f.md5.as_bytes());
        ctx.consume([b'\n']);
    }
    format!("{:x}", ctx.finalize())
}

/// How each file gets into the new release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Same content as in the live release: server-side copy from `source`, no body sent.
    Copy {
        source: String,
    },
    Upload,
    /// A hashed asset already in the shared store: nothing to write.
    Reuse,
}

/// One file's place in the new release.
#[derive(Debug, Clone)]
pub struct Placed<'a> {
    pub file: &'a SiteFile,
    pub key: String,
    pub step: Step,
}

/// Where each file goes and how, in write order: everything else before HTML, so no visitor
/// gets an index.html whose bundles are not there yet. `shared` is given when the distribution
/// has a shared asset store: hashed assets then go there, once, and those whose key it lists
/// (the keys already holding that file's content) are reused.
pub fn plan<'a>(
    files: &'a [SiteFile],
    id: &str,
    live: Option<&Manifest>,
    shared: Option<&BTreeSet<String>>,
) -> Vec<Placed<'a>> {
    let mut placed: Vec<Placed> = files
        .iter()
        .map(|file| match shared.filter(|_| file.hashed) {
            Some(store) => Placed {
                file,
                key: file.path.clone(),
                step: if store.contains(&file.path) {
                    Step::Reuse
                } else {
                    Step::Upload
                },
            },
            None => {
                let unchanged = live
                    .and_then(|m| m.files.get(&file.path).map(|e| (m, e)))
                    .filter(|(_, e)| e.md5 == file.md5);
                let step = match unchanged {
                    Some((m, e)) if m.shared_assets && e.hashed => Step::Copy {
                        source: file.path.clone(),
                    },
                    Some((m, _)) => Step::Copy {
                        source: format!("{}{}", release_prefix(&m.id), file.path),
                    },
                    None => Step::Upload,
                };
                Placed {
                    file,
                    key: format!("{}{}", release_prefix(id), file.path),
                    step,
                }
            }
        })
        .collect();
    placed.sort_by_key(|p| p.file.is_html());
    placed
}

/// CloudFront paths to invalidate for a release: the unhashed files (HTML, favicon, manifest…),
/// with `/dir/` beside each `dir/index.html`, URL-encoded as CloudFront wants them. Hashed
/// assets have new names when they change and never need it. More than `max` paths: `/*` (one
/// path in the quota).
pub fn invalidation_paths(files: &BTreeMap<String, ManifestEntry>, max: usize) -> Vec<String> {
    let mut paths = Vec::new();
    for (path, entry) in files {
        if entry.hashed {
            continue;
        }
        if path == "index.html" {
            paths.push("/".to_string());
        } else if let Some(dir) = path.strip_suffix("/index.html") {
            paths.push(invalidation_path(&format!("/{dir}/")));
        }
        paths.push(invalidation_path(&format!("/{path}")));
    }
    if paths.len() > max {
        return vec!["/*".to_string()];
    }
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        for (p, t) in [
            ("index.html", "text/html; charset=utf-8"),
            ("assets/app-1a2b3c4d.js", "text/javascript; charset=utf-8"),
            ("a.mjs", "text/javascript; charset=utf-8"),
            ("assets/x.css", "text/css; charset=utf-8"),
            ("logo.svg", "image/svg+xml"),
            ("data.json", "application/json"),
            ("m.wasm", "application/wasm"),
            ("f.woff2", "font/woff2"),
            ("site.webmanifest", "application/manifest+json"),
            ("app.js.map", "application/json"),
            ("robots.txt", "text/plain; charset=utf-8"),
            ("favicon.ico", "image/x-icon"),
            ("a.png", "image/png"),
            ("a.JPG", "image/jpeg"),
            ("a.webp", "image/webp"),
            ("a.avif", "image/avif"),
            ("a.htm", "text/html; charset=utf-8"),
            ("a.cjs", "text/javascript; charset=utf-8"),
            ("f.woff", "font/woff"),
            ("f.ttf", "font/ttf"),
            ("sitemap.xml", "application/xml"),
            ("a.jpeg", "image/jpeg"),
            ("a.gif", "image/gif"),
            ("terms.pdf", "application/pdf"),
            ("LICENSE", "application/octet-stream"),
            // Not listed: mime_guess's answer, text with the charset the listed ones have.
            ("intro.mp4", "video/mp4"),
            ("prices.CSV", "text/csv; charset=utf-8"),
            ("a.not-an-extension", "application/octet-stream"),
        ] {
            assert_eq!(content_type(p), t, "{p}");
        }
    }

    #[test]
    fn hashed_assets_are_recognised() {
        assert!(is_hashed("assets/index-BxK3f9a2.js", "assets/"));
        assert!(
            is_hashed("assets/index-aD-elAj9.js", "assets/"),
            "Rollup 4 url-safe hash"
        );
        assert!(is_hashed("assets/logo.8c2e1f0a.svg", "assets/"));
        assert!(!is_hashed("assets/index.html", "assets/"));
        assert!(
            !is_hashed("index-BxK3f9a2.js", "assets/"),
            "outside the hashed folder"
        );
        assert!(
            !is_hashed("assets/app.js", ""),
            "no hashed folder configured"
        );
    }

    fn file(path: &str, md5: &str) -> SiteFile {
        SiteFile {
            path: path.into(),
            local: PathBuf::new(),
            size: 1,
            md5: md5.into(),
            content_type: content_type(path),
            cache_control: String::new(),
            hashed: is_hashed(path, "assets/"),
        }
    }

    #[test]
    fn plan_copies_unchanged_files_and_writes_html_last() {
        let old = [
            file("index.html", "a"),
            file("assets/app-11111111.js", "b"),
            file("robots.txt", "c"),
        ];
        let live = manifest("r1", &old, false);
        let new = [
            file("about/index.html", "d"),
            file("assets/app-22222222.js", "e"),
            file("index.html", "f"),
            file("robots.txt", "c"),
        ];
        let steps = plan(&new, "r2", Some(&live), None);
        let order: Vec<&str> = steps.iter().map(|p| p.file.path.as_str()).collect();
        assert_eq!(
            order,
            [
                "assets/app-22222222.js",
                "robots.txt",
                "about/index.html",
                "index.html"
            ]
        );
        let robots = steps.iter().find(|p| p.file.path == "robots.txt").unwrap();
        assert_eq!(
            robots.step,
            Step::Copy {
                source: "releases/r1/robots.txt".into()
            }
        );
        assert_eq!(robots.key, "releases/r2/robots.txt");
        assert!(steps
            .iter()
            .filter(|p| p.file.path != "robots.txt")
            .all(|p| p.step == Step::Upload));
        assert_ne!(tree_digest(&old), tree_digest(&new));
    }

    #[test]
    fn shared_assets_are_stored_once_at_the_root() {
        let old = [file("index.html", "a"), file("assets/app-11111111.js", "b")];
        let live = manifest("r1", &old, true);
        let new = [
            file("index.html", "c"),
            file("assets/app-11111111.js", "b"),
            file("assets/new-22222222.js", "d"),
        ];
        // The store holds app-11111111.js with this content; new-22222222.js not (or with other
        // content).
        let store = BTreeSet::from(["assets/app-11111111.js".to_string()]);
        let steps = plan(&new, "r2", Some(&live), Some(&store));
        let find = |p: &str| steps.iter().find(|s| s.file.path == p).unwrap().clone();
        assert_eq!(find("assets/app-11111111.js").step, Step::Reuse);
        assert_eq!(find("assets/new-22222222.js").key, "assets/new-22222222.js");
        assert_eq!(find("assets/new-22222222.js").step, Step::Upload);
        assert_eq!(find("index.html").key, "releases/r2/index.html");

        // Back to one origin: unchanged hashed assets are copied from the shared store.
        let steps = plan(&new, "r3", Some(&live), None);
        let app = steps
            .iter()
            .find(|s| s.file.path == "assets/app-11111111.js")
            .unwrap();
        assert_eq!(
            app.step,
            Step::Copy {
                source: "assets/app-11111111.js".into()
            }
        );
    }

    #[test]
    fn invalidation_covers_unhashed_paths_or_falls_back_to_wildcard() {
        let m = manifest(
            "r",
            &[
                file("index.html", "a"),
                file("about/index.html", "b"),
                file("assets/app-11111111.js", "c"),
            ],
            false,
        );
        assert_eq!(
            invalidation_paths(&m.files, 10),
            ["/about/", "/about/index.html", "/", "/index.html"]
        );
        assert_eq!(invalidation_paths(&m.files, 3), ["/*"]);

        let m = manifest("r", &[file("café menu/index.html", "a")], false);
        assert_eq!(
            invalidation_paths(&m.files, 10),
            ["/caf%C3%A9%20menu/", "/caf%C3%A9%20menu/index.html"]
        );
    }
}
