#!/bin/sh
# Installs a bgcloud release binary, its SHA-256 checksum verified before anything is installed.
#
#   curl -fsSL https://github.com/bgcloud/bgcloud/releases/latest/download/install.sh | sh
#   curl -fsSL https://github.com/bgcloud/bgcloud/releases/latest/download/install.sh | sh -s -- --version v0.2.0
#   sh install.sh [--version vX.Y.Z] [--to DIR] [--sha256 HEX] [--repo OWNER/NAME] [--base-url URL] [--allow-root]
#
# --version   the release tag (default: the latest release)
# --to        where the binary goes (default: ~/.local/bin; /usr/local/bin as root)
# --sha256    the archive's expected SHA-256, e.g. from a release you reviewed: checked as well as
#             the release's own .sha256 file, which comes from the same place as the archive
# --repo      the GitHub repository the releases are in (default: bgcloud/bgcloud)
# --base-url  where the releases are (default: https://github.com/<repo>/releases): a mirror, or
#             GitHub Enterprise; it serves <base>/download/<tag>/<asset> and
#             <base>/latest/download/<asset>
# --allow-root  install although running as root (refused otherwise: a user directory is enough)
#
# Releases exist for Linux x86_64 and aarch64 (static, musl: any distribution) and macOS arm64;
# anything else is refused with the command that builds bgcloud from source instead. Nothing is
# installed unless the archive matches its checksum and the binary in it runs here. The same
# script installs bgcloud in the GitHub Action (action.yml). POSIX sh: no bash needed.
set -eu

repo="bgcloud/bgcloud"
version=""
to=""
base=""
expected=""
allow_root=0

say() { printf 'install.sh: %s\n' "$*" >&2; }
fail() {
  say "$*"
  exit 1
}

while [ $# -gt 0 ]; do
  case "$1" in
    --version | --to | --repo | --base-url | --sha256)
      [ $# -ge 2 ] || fail "$1 needs a value"
      case "$1" in
        --version) version="$2" ;;
        --to) to="$2" ;;
        --repo) repo="$2" ;;
        --base-url) base="$2" ;;
        --sha256) expected="$2" ;;
      esac
      shift 2
      ;;
    --allow-root)
      allow_root=1
      shift
      ;;
    -h | --help)
      sed -n '2,/^set -eu/p' "$0" 2>/dev/null | sed '$d' | sed 's/^# \{0,1\}//' >&2 || true
      exit 0
      ;;
    *) fail "unknown argument '$1' (see --help)" ;;
  esac
done

case "$repo" in
  */* ) ;;
  *) fail "--repo '$repo' is not OWNER/NAME" ;;
esac
if [ -n "$version" ]; then
  case "$version" in
    v*) ;;
    *) version="v$version" ;;
  esac
  # A tag goes into a URL and a directory name: nothing but a version.
  if ! printf '%s\n' "$version" | grep -Eq '^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$'; then
    fail "--version '$version' is not a release tag like v0.2.0"
  fi
fi
if [ -n "$expected" ] && ! printf '%s\n' "$expected" | grep -Eq '^[0-9a-fA-F]{64}$'; then
  fail "--sha256 '$expected' is not 64 hexadecimal digits"
fi
expected=$(printf '%s' "$expected" | tr 'A-F' 'a-f')

if [ "$(id -u)" = 0 ] && [ "$allow_root" != 1 ]; then
  fail "refusing to run as root: install for your user (no sudo; the binary goes to ~/.local/bin), or pass --allow-root (then /usr/local/bin unless --to says otherwise)"
fi
if [ -z "$to" ]; then
  if [ "$(id -u)" = 0 ]; then
    to=/usr/local/bin
  else
    [ -n "${HOME:-}" ] || fail "HOME is not set: pass --to DIR"
    to="$HOME/.local/bin"
  fi
fi

# The release asset for this machine.
os=$(uname -s)
arch=$(uname -m)
case "$os/$arch" in
  Linux/x86_64 | Linux/amd64) target=x86_64-unknown-linux-musl ;;
  Linux/aarch64 | Linux/arm64) target=aarch64-unknown-linux-musl ;;
  Darwin/arm64 | Darwin/aarch64) target=aarch64-apple-darwin ;;
  *)
    from_source="cargo install --locked --git https://github.com/$repo"
    [ -n "$version" ] && from_source="$from_source --tag $version"
    fail "no bgcloud release for $os $arch (releases exist for Linux x86_64, Linux aarch64 and macOS arm64); build it from source with Rust 1.85 or later: $from_source bgcloud"
    ;;
esac
asset="bgcloud-$target.tar.gz"

[ -n "$base" ] || base="https://github.com/$repo/releases"
base=${base%/}
case "$base" in
  https://*) ;;
  # The checksum comes from the same place as the archive: plain HTTP only where nothing lies
  # between (a local mirror, the tests).
  http://127.0.0.1[:/]* | http://localhost[:/]* | http://\[::1\][:/]*) ;;
  *) fail "--base-url '$base' is not https:// (the checksum comes from the same place as the archive)" ;;
esac
if [ -n "$version" ]; then
  url="$base/download/$version/$asset"
else
  url="$base/latest/download/$asset"
fi

if command -v curl >/dev/null 2>&1; then
  fetch() { curl -fsSL --retry 3 -o "$2" "$1"; }
elif command -v wget >/dev/null 2>&1; then
  fetch() { wget -q -O "$2" "$1"; }
else
  fail "neither curl nor wget is installed: install one of them"
fi
if command -v sha256sum >/dev/null 2>&1; then
  digest() { sha256sum "$1" | cut -d' ' -f1; }
elif command -v shasum >/dev/null 2>&1; then
  digest() { shasum -a 256 "$1" | cut -d' ' -f1; }
else
  fail "neither sha256sum nor shasum is installed: the archive cannot be verified"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bgcloud-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

say "downloading $url"
fetch "$url" "$tmp/$asset" || fail "could not download $url (is ${version:-the latest release} published for $target?)"
fetch "$url.sha256" "$tmp/$asset.sha256" || fail "could not download $url.sha256"
published=$(cut -d' ' -f1 "$tmp/$asset.sha256" | tr 'A-F' 'a-f')
actual=$(digest "$tmp/$asset")
if [ "$actual" != "$published" ]; then
  fail "checksum mismatch for $asset: the release says $published, the download is $actual; nothing was installed"
fi
if [ -n "$expected" ] && [ "$actual" != "$expected" ]; then
  fail "checksum mismatch for $asset: --sha256 says $expected, the download (and its .sha256) is $actual; nothing was installed"
fi

(cd "$tmp" && tar -xzf "$asset") || fail "could not unpack $asset; nothing was installed"
binary="$tmp/bgcloud-$target/bgcloud"
[ -f "$binary" ] || fail "$asset has no bgcloud-$target/bgcloud; nothing was installed"
installed=$("$binary" --version) || fail "the bgcloud in $asset does not run on this machine ($os $arch); nothing was installed"

mkdir -p "$to" || fail "cannot create $to: pass --to DIR"
# Copied next to its final name, then renamed: a bgcloud already there is replaced at once, never
# half-written.
cp "$binary" "$to/.bgcloud.tmp.$$" || fail "cannot write to $to: pass --to DIR"
chmod 755 "$to/.bgcloud.tmp.$$"
mv -f "$to/.bgcloud.tmp.$$" "$to/bgcloud"
say "installed $installed (sha256 $actual)"
case ":${PATH:-}:" in
  *":$to:"*) ;;
  *) say "$to is not on your PATH: add it, e.g. export PATH=\"$to:\$PATH\"" ;;
esac
printf '%s\n' "$to/bgcloud"
