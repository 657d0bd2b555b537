"""The lane's CloudFront data plane: an HTTP server on 127.0.0.1 that serves a distribution the
way CloudFront does, from the emulator's live state.

- The cache behaviour is picked by path pattern (`/assets/*`), else the default one; its origin's
  bucket and origin path (what `bgcloud frontend deploy` switches) say which S3 object answers.
  `/` is the default root object.
- S3's 403/404 go through the distribution's custom error responses (the SPA's
  `/index.html` with 200).
- Answers are cached by path, as long as their Cache-Control allows (`max-age`, `s-maxage`;
  `no-cache`/`no-store`/`private` are not served from cache), so a switch of the origin path is
  not seen for cached paths until they are invalidated: CreateInvalidation drops the matching
  entries (`/*` patterns included) when it completes (timing.py cf_invalidation), not at once.
- A distribution update reaches the edges after a while (timing.py cf_propagation): until then
  the plane serves by the configuration before it, as CloudFront's edges do ("until your
  configuration is updated in an edge location, CloudFront continues to serve your content from
  that location based on the previous configuration"). A response says `X-Cache: Hit from cloudfront` or `Miss`.
"""

import fnmatch
import re
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from moto.cloudfront import models as cloudfront_models
from moto.s3 import models as s3_models

import timing

PLANES = {}  # distribution id -> CdnPlane
LOCK = threading.Lock()
UPDATES = {}  # distribution id -> [(when it reaches the edges, the config before it)], oldest first


def _s3_object(bucket, key):
    """(status, headers, body) of an S3 object, as S3 answers CloudFront's origin request (with
    the distribution's access: a missing key is 403, as for a private bucket without
    s3:ListBucket)."""
    located = s3_models.s3_backends.bucket_accounts.get(bucket)
    if located is None:
        return 404, {}, b""
    partition, account_id = located
    obj = s3_models.s3_backends[account_id][partition].get_object(bucket, key)
    if obj is None:
        return 403, {}, b""
    meta = obj.metadata
    headers = {
        "content-type": meta.get("content-type", "binary/octet-stream"),
        "etag": obj.etag,
        "last-modified": obj.last_modified_RFC1123,
    }
    if meta.get("cache-control"):
        headers["cache-control"] = meta["cache-control"]
    return 200, headers, obj.value


def _distribution(dist_id):
    for account in cloudfront_models.cloudfront_backends.values():
        for backend in account.values():
            if dist_id in backend.distributions:
                return backend.distributions[dist_id]
    raise KeyError(dist_id)


def _ttl(cache_control):
    directives = {}
    for part in (cache_control or "").split(","):
        name, _, value = part.strip().lower().partition("=")
        directives[name] = value
    if {"no-cache", "no-store", "private"} & directives.keys():
        return 0
    for name in ("s-maxage", "max-age"):
        if directives.get(name, "").isdigit():
            return int(directives[name])
    return 0


class CdnPlane:
    def __init__(self, dist_id):
        self.dist_id = dist_id
        self.cache = {}  # path -> (expires, status, headers, body)
        self.pending = []  # (when it completes, paths): invalidations on their way to the edges
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.plane = self
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _config(self):
        """The configuration the edges serve by now: the one before the oldest update that has
        not reached them yet, else the current one."""
        now = time.time()
        with LOCK:
            pending = [(at, before) for at, before in UPDATES.get(self.dist_id, []) if at > now]
            UPDATES[self.dist_id] = pending
        if pending:
            return pending[0][1]
        return _distribution(self.dist_id).distribution_config

    def _origin_for(self, path):
        config = self._config()
        behaviours = (config.CacheBehaviors or {}).get("Items") or []
        origin_id = config.DefaultCacheBehavior.target_origin_id
        for b in behaviours:
            if fnmatch.fnmatchcase(path, b.path_pattern if b.path_pattern.startswith("/") else "/" + b.path_pattern):
                origin_id = b.target_origin_id
                break
        origin = next(o for o in config.Origins["Items"] if o.id == origin_id)
        bucket = re.split(r"\.s3[.-]", origin.domain_name)[0]
        return config, bucket, origin.origin_path or ""

    def fetch_origin(self, path):
        config, bucket, origin_path = self._origin_for(path)
        object_path = path
        if path == "/" and config.DefaultRootObject:
            object_path = "/" + config.DefaultRootObject
        key = (origin_path.rstrip("/") + object_path).lstrip("/")
        status, headers, body = _s3_object(bucket, key)
        return config, status, headers, body

    def get(self, path):
        now = time.time()
        self._apply_invalidations(now)
        with LOCK:
            hit = self.cache.get(path)
        if hit and hit[0] > now:
            return hit[1], dict(hit[2], **{"x-cache": "Hit from cloudfront"}), hit[3]
        config, status, headers, body = self.fetch_origin(path)
        if status in (403, 404):
            for err in (config.CustomErrorResponses or {}).get("Items") or []:
                if int(err["ErrorCode"]) == status and err.get("ResponsePagePath"):
                    _, page_status, headers, body = self.fetch_origin(err["ResponsePagePath"])
                    status = int(err.get("ResponseCode") or page_status)
                    break
        keep = {k: v for k, v in headers.items()
                if k in ("content-type", "cache-control", "etag", "last-modified")}
        ttl = _ttl(headers.get("cache-control")) if status == 200 else 0
        if ttl > 0:
            with LOCK:
                self.cache[path] = (now + ttl, status, keep, body)
        return status, dict(keep, **{"x-cache": "Miss from cloudfront"}), body

    def invalidate(self, paths):
        """Drops the cached paths once the invalidation completes (timing.py cf_invalidation):
        until then edges may still answer from their cache."""
        with LOCK:
            self.pending.append((time.time() + timing.get("cf_invalidation"), paths))

    def _apply_invalidations(self, now):
        with LOCK:
            due = [paths for at, paths in self.pending if at <= now]
            self.pending = [(at, paths) for at, paths in self.pending if at > now]
            for paths in due:
                for cached in list(self.cache):
                    if any(fnmatch.fnmatchcase(cached, urllib.parse.unquote(p)) for p in paths):
                        del self.cache[cached]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        try:
            status, headers, body = self.server.plane.get(path)
        except Exception as e:  # an origin the plane cannot read is CloudFront's 502
            status, headers, body = 502, {"content-type": "text/plain"}, str(e).encode()
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


_stock_create_invalidation = None
_stock_update_distribution = None


def _update_distribution(self, dist_config, _id, if_match):
    dist = self.distributions.get(_id)
    # moto replaces the config object on update: the one it had is what edges still serve.
    before = dist.distribution_config if dist is not None else None
    result = _stock_update_distribution(self, dist_config, _id, if_match)
    if before is not None:
        with LOCK:
            UPDATES.setdefault(_id, []).append((time.time() + timing.get("cf_propagation"), before))
    return result


def _create_invalidation(self, dist_id, paths, caller_ref):
    invalidation = _stock_create_invalidation(self, dist_id, paths, caller_ref)
    with LOCK:
        plane = PLANES.get(dist_id)
    if plane is not None:
        plane.invalidate(paths)
    return invalidation


def serve(dist_id):
    """Starts (once) the data plane for a distribution; returns its port on 127.0.0.1."""
    global _stock_create_invalidation, _stock_update_distribution
    with LOCK:
        if _stock_create_invalidation is None:
            # Wrapped here, after every other patch of CreateInvalidation and
            # UpdateDistribution (If-Match, ETags) is in place.
            _stock_create_invalidation = cloudfront_models.CloudFrontBackend.create_invalidation
            cloudfront_models.CloudFrontBackend.create_invalidation = _create_invalidation
            _stock_update_distribution = cloudfront_models.CloudFrontBackend.update_distribution
            cloudfront_models.CloudFrontBackend.update_distribution = _update_distribution
        plane = PLANES.get(dist_id)
        if plane is None:
            plane = PLANES[dist_id] = CdnPlane(dist_id)
    return plane.port
