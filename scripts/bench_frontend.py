"""Frontend release benchmark against the local emulator (see scripts/bench-frontend)."""

import argparse
import concurrent.futures
import os
import shutil
import subprocess
import sys
import tempfile
import time

import boto3
from botocore.config import Config

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import control, start_emulator  # noqa: E402


def generate(dir, files, total_bytes):
    """A Vite-like tree: hashed assets plus index.html and a few unhashed files."""
    size = total_bytes // files
    os.makedirs(os.path.join(dir, "assets"), exist_ok=True)
    with open(os.path.join(dir, "index.html"), "w") as f:
        f.write("<!doctype html><script type=module src=/assets/index-00000000.js></script>")
    for name in ["favicon.ico", "robots.txt", "manifest.webmanifest"]:
        with open(os.path.join(dir, name), "wb") as f:
            f.write(b"x" * 100)
    for i in range(files - 4):
        with open(os.path.join(dir, "assets", f"chunk{i}-{i:08x}.js"), "wb") as f:
            f.write(os.urandom(size))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--megabytes", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="bgcloud-bench-fe-")
    emulator, base = start_emulator(work)
    try:
        env = dict(os.environ, AWS_ENDPOINT_URL=base, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                   AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true",
                   AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
        config = os.path.join(work, "bgcloud.toml")
        subprocess.run([args.bootstrap, "--name", "fe", "--instances", "1", "--images", "v1", "--out", config],
                       env=env, check=True, capture_output=True)
        env["BGCLOUD_CONFIG"] = config
        site = os.path.join(work, "dist")
        generate(site, args.files, args.megabytes * 1024 * 1024)
        bodies = {}
        for root, _, names in os.walk(site):
            for n in names:
                p = os.path.join(root, n)
                bodies[os.path.relpath(p, site)] = open(p, "rb").read()

        # The emulator's ceiling: the same objects put by a plain client, `concurrency` at a time.
        s3 = boto3.client("s3", endpoint_url=base, region_name="us-east-1", aws_access_key_id="ceiling",
                          aws_secret_access_key="x", config=Config(max_pool_connections=args.concurrency))
        s3.create_bucket(Bucket="ceiling")
        start = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(lambda kv: s3.put_object(Bucket="ceiling", Key=kv[0], Body=kv[1]), bodies.items()))
        ceiling = time.perf_counter() - start

        def bgcloud(*argv, key):
            e = dict(env, AWS_ACCESS_KEY_ID=key)
            start = time.perf_counter()
            out = subprocess.run([args.bin, *argv], env=e, capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(f"bgcloud {' '.join(argv)} failed:\n{out.stderr}")
            return time.perf_counter() - start, control(base, f"/_bgcloud/requests?access_key={key}")

        first, _ = bgcloud("frontend", "deploy", site, "--release-id", "r1", key="first")

        sync = None
        if shutil.which("aws"):
            start = time.perf_counter()
            subprocess.run(["aws", "--endpoint-url", base, "s3", "sync", site, "s3://fe-web/sync/", "--only-show-errors"],
                           env=env, check=True)
            sync = time.perf_counter() - start

        # One bundle changes: as with Vite, its name (content hash) changes and index.html with it.
        os.remove(os.path.join(site, "assets", "chunk0-00000000.js"))
        with open(os.path.join(site, "assets", "chunk0-ffffffff.js"), "wb") as f:
            f.write(b"// changed")
        with open(os.path.join(site, "index.html"), "w") as f:
            f.write("<!doctype html><script type=module src=/assets/chunk0-ffffffff.js></script>")
        again, requests = bgcloud("frontend", "deploy", site, "--release-id", "r2", key="again")
        s3_writes = [q for q in requests if q["service"] == "s3" and q["method"] in ("PUT", "POST", "DELETE")]
        uploads = [q for q in s3_writes if q["action"].startswith("PUT /fe-web/")]
        copies = [q for q in s3_writes if q["action"].startswith("COPY ")]

        mb = sum(len(b) for b in bodies.values()) / 1e6
        print(f"site: {len(bodies)} files, {mb:.1f} MB; concurrency {args.concurrency}")
        print(f"emulator ceiling (boto3, {args.concurrency} threads, PutObject): {ceiling:.2f} s "
              f"({len(bodies) / ceiling:.0f} req/s)")
        print(f"bgcloud frontend deploy, first release:  {first:.2f} s ({first / ceiling:.2f}x the ceiling)")
        if sync is not None:
            print(f"aws s3 sync (awscli) of the same tree:   {sync:.2f} s")
        else:
            print("aws s3 sync: awscli not installed, not measured")
        print(f"re-release with one changed file:        {again:.2f} s, {len(s3_writes)} S3 write requests "
              f"({len(uploads)} uploads, {len(copies)} server-side copies, "
              f"{len(s3_writes) - len(uploads) - len(copies)} lock/record/manifest)")
    finally:
        emulator.terminate()


if __name__ == "__main__":
    main()
