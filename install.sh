#!/bin/sh
# Installs a bgcloud release binary, its SHA-256 checksum verified before anything is installed.
# Usage: see usage() below, or `sh install.sh --help`. POSIX sh: no bash needed.
#
# Releases exist for Linux x86_64 and aarch64 (static, musl: any distribution) and macOS arm64;
# anything else is refused with the command that builds bgcloud from source instead. Nothing is
# installed unless the archive matches its checksum and the binary in it runs here. The same
# script installs bgcloud in the GitHub Action (action.yml).
#
# Everything is inside main(), called on the last line: a download cut short by `curl | sh` runs
# nothing at all.
set -eu

usage() {
  cat <<'EOF'
install.sh: install a bgcloud release binary, its SHA-256 checksum verified first.

  curl -fsSL https://github.com/bgcloud/bgcloud/releases/latest/download/install.sh | sh
  curl -fsSL https://github.com/bgcloud/bgcloud/releases/latest/download/install.sh | sh -s -- --version v0.2.0
  sh install.sh [--version vX.Y.Z] [--to DIR] [--sha256 HEX] [--repo OWNER/NAME] [--base-url URL]
                [--cache DIR] [--allow-root]

  --version     the release tag (default: the latest release)
  --to DIR      where the binary goes (default: ~/.local/bin; /usr/local/bin as root)
  --sha256 HEX  the archive's expected SHA-256 (e.g. from a release you reviewed), checked as well
                as the release's own .sha256 file, which comes from the same place as the archive
  --repo        the GitHub repository the releases are in (default: bgcloud/bgcloud)
  --base-url    where the releases are (default: https://github.com/<repo>/releases): a mirror
                serving <base>/download/<tag>/<asset> and <base>/latest/download/<asset>;
                https:// only, plain http:// only on 127.0.0.1, localhost or [::1]
  --cache DIR   keep the downloaded archive in DIR and reuse it on the next run when it still
                matches the release's .sha256 (always downloaded afresh) and --sha256
  --allow-root  install although running as root (refused otherwise: a user directory is enough)

Releases exist for Linux x86_64 and aarch64 (static) and macOS arm64.
EOF
}

say() { printf 'install.sh: %s\n' "$*" >&2; }
fail() {
  say "$*"
  exit 1
}

# One line, no control characters: every value below goes into a URL or a path.
one_line() {
  case "$2" in
    *"
"* | *"	"*) fail "$1 must be one line of text" ;;
  esac
}

main() {
  repo="bgcloud/bgcloud"
  version=""
  to=""
  base=""
  expected=""
  cache=""
  allow_root=0

  while [ $# -gt 0 ]; do
    case "$1" in
      --version | --to | --repo | --base-url | --sha256 | --cache)
        [ $# -ge 2 ] || fail "$1 needs a value"
        one_line "$1" "$2"
        case "$1" in
          --version) version="$2" ;;
          --to) to="$2" ;;
          --repo) repo="$2" ;;
          --base-url) base="$2" ;;
          --sha256) expected="$2" ;;
          --cache) cache="$2" ;;
        esac
        shift 2
        ;;
      --allow-root)
        allow_root=1
        shift
        ;;
      -h | --help)
        usage
        exit 0
        ;;
      *) fail "unknown argument '$1' (see --help)" ;;
    esac
  done

  printf '%s\n' "$repo" | grep -Eqx '[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+' ||
    fail "--repo '$repo' is not OWNER/NAME"
  if [ -n "$version" ]; then
    case "$version" in
      v*) ;;
      *) version="v$version" ;;
    esac
    printf '%s\n' "$version" | grep -Eqx 'v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?' ||
      fail "--version '$version' is not a release tag like v0.2.0"
  fi
  if [ -n "$expected" ]; then
    printf '%s\n' "$expected" | grep -Eqx '[0-9a-fA-F]{64}' ||
      fail "--sha256 '$expected' is not 64 hexadecimal digits"
    expected=$(printf '%s' "$expected" | tr 'A-F' 'a-f')
  fi

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

  # The release asset for this machine. A shell under Rosetta on an Apple-silicon Mac says
  # x86_64; the arm64 binary is the one that runs there natively.
  os=$(uname -s)
  arch=$(uname -m)
  if [ "$os/$arch" = Darwin/x86_64 ] && [ "$(sysctl -n sysctl.proc_translated 2>/dev/null || true)" = 1 ]; then
    arch=arm64
  fi
  case "$os/$arch" in
    Linux/x86_64 | Linux/amd64) target=x86_64-unknown-linux-musl ;;
    Linux/aarch64 | Linux/arm64) target=aarch64-unknown-linux-musl ;;
    Darwin/arm64 | Darwin/aarch64) target=aarch64-apple-darwin ;;
    *)
      from_source="cargo install --locked --git https://github.com/$repo"
      [ -z "$version" ] || from_source="$from_source --tag $version"
      fail "no bgcloud release for $os $arch (releases exist for Linux x86_64, Linux aarch64 and macOS arm64); build it from source with Rust 1.85 or later: $from_source bgcloud"
      ;;
  esac
  asset="bgcloud-$target.tar.gz"

  [ -n "$base" ] || base="https://github.com/$repo/releases"
  base=${base%/}
  case "$base" in
    *@*) fail "--base-url '$base' has a user name in it (user@host): give the host alone" ;;
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
  staged=""
  trap 'rm -rf "$tmp"; [ -z "$staged" ] || rm -f "$staged"' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM

  # The checksum first, always from the release (a cached archive is checked against it too).
  fetch "$url.sha256" "$tmp/$asset.sha256" ||
    fail "could not download $url.sha256 (is ${version:-a latest release} published for $target?)"
  published=$(cut -d' ' -f1 "$tmp/$asset.sha256" | tr 'A-F' 'a-f')
  printf '%s\n' "$published" | grep -Eqx '[0-9a-f]{64}' ||
    fail "$url.sha256 does not start with a SHA-256 (64 hexadecimal digits): is --base-url a bgcloud release server?"

  archive="$tmp/$asset"
  if [ -n "$cache" ] && [ -f "$cache/$asset" ]; then
    cached=$(digest "$cache/$asset")
    if [ "$cached" = "$published" ] && { [ -z "$expected" ] || [ "$cached" = "$expected" ]; }; then
      say "using $cache/$asset (it matches the release's checksum)"
      archive="$cache/$asset"
    else
      say "$cache/$asset does not match the release's checksum: downloading it again"
    fi
  fi
  if [ "$archive" = "$tmp/$asset" ]; then
    say "downloading $url"
    fetch "$url" "$archive" || fail "could not download $url"
  fi
  actual=$(digest "$archive")
  if [ "$actual" != "$published" ]; then
    again=""
    [ -n "$version" ] || again=" (or a release was published during the download: run again)"
    fail "checksum mismatch for $asset: the release says $published, the download is $actual$again; nothing was installed"
  fi
  if [ -n "$expected" ] && [ "$actual" != "$expected" ]; then
    fail "checksum mismatch for $asset: --sha256 says $expected, the download (and its .sha256) is $actual; nothing was installed"
  fi

  tar -xzf "$archive" -C "$tmp" || fail "could not unpack $asset; nothing was installed"
  binary="$tmp/bgcloud-$target/bgcloud"
  [ -f "$binary" ] || fail "$asset has no bgcloud-$target/bgcloud; nothing was installed"
  installed=$("$binary" --version) || fail "the bgcloud in $asset does not run on this machine ($os $arch); nothing was installed"

  if [ -n "$cache" ] && [ "$archive" = "$tmp/$asset" ]; then
    mkdir -p "$cache" && cp "$archive" "$cache/$asset.part" && mv -f "$cache/$asset.part" "$cache/$asset" ||
      say "could not keep the archive in $cache (the install goes on)"
  fi

  mkdir -p "$to" || fail "cannot create $to: pass --to DIR"
  # Copied next to its final name, then renamed: a bgcloud already there is replaced at once,
  # never half-written; the copy is removed on any way out before the rename.
  staged="$to/.bgcloud.tmp.$$"
  cp "$binary" "$staged" || fail "cannot write to $to: pass --to DIR"
  chmod 755 "$staged"
  mv -f "$staged" "$to/bgcloud"
  staged=""
  say "installed $installed (sha256 $actual)"
  case ":${PATH:-}:" in
    *":$to:"*) ;;
    *) say "$to is not on your PATH: add it, e.g. export PATH=\"$to:\$PATH\"" ;;
  esac
  printf '%s\n' "$to/bgcloud"
}

main "$@"
