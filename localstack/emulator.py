"""Local AWS for bgcloud's tests and demo: moto's server, made to behave like AWS where moto is
kinder, plus test controls.

Models that are ON by default (tests cannot pass on the emulator's kindness):
  model_alb.py   the ALB's health checks: targets keyed by id and port, `initial` after
                 registration, verdicts that change only after HealthyThresholdCount /
                 UnhealthyThresholdCount checks one interval apart (a replaced container keeps
                 its old verdict for a while), `unused` for groups no forward uses, `draining`
                 for the deregistration delay
  model_ssm.py   SSM agents (DescribeInstanceInformation, InvalidInstanceId), launches that start
                 containers the ALB model checks, CancelCommand, output truncated as SSM does,
                 invocations that take time (InvocationDoesNotExist, Pending, InProgress)
  model_cloudwatch.py  percentile statistics (p99) in GetMetricData; datapoints published a
                 period and a delay late, absent when nothing happened; the namespace counts;
                 DescribeAlarms' AlarmTypes (metric alarms only without it), composite alarms
  timing.py      every delay above, sized by a profile: `aws` (default) or `scaled` (seconds)
  model_autoscaling.py  an Auto Scaling group registers only InService instances in its target
                 groups; Standby and Terminating deregister (draining) while the instance stays
                 EC2 running, and a terminated one goes only after its drain
  model_cloudfront.py  CloudFront's managed response headers policies; distributions naming a
                 policy that does not exist are refused
  model_iam.py   policy conditions that do not hold do not apply; S3 over TLS; versioned
                 buckets with delete markers can be deleted
  model_lane.py  with --lane: instances that are network namespaces running real containers
                 (lane/lane.py), real health checks, ALB and CloudFront data planes
  this file      ECR digests that are the manifest's sha256, CloudFront If-Match and ETag
                 rotation, invalidations InProgress then "Completed" (cf_invalidation),
                 distributions InProgress then Deployed after each change (cf_propagation), flow
                 logs into an S3 folder

Controls, served under /_bgcloud/ on the same port as the AWS APIs:

  GET  /_bgcloud/health                       readiness
  GET  /_bgcloud/requests?access_key=AKID     requests signed with that access key, in order:
                                               service, action, method, path, t, status (the
                                               HTTP status answered), and if_match /
                                               if_none_match when sent, fault (its code) when a
                                               fault answered it
  POST /_bgcloud/target-health                {"target_group_arn", "target_id",
                                               "states": [{"state", "reason", "description",
                                                           "times": n}, ...]}
       forces what DescribeTargetHealth says, over the model: each entry answers `times` calls
       (default 1); the last one sticks. An empty list clears the override.
  POST /_bgcloud/image-behaviour              {"digest", "behaviour"}: containers started from
                                               that image behave so (model_alb.py)
  POST /_bgcloud/container                    {"instance_id", "port", "behaviour"}: what answers
                                               on that instance port from now on
  POST /_bgcloud/settle                       {"target_group_arn"}: its targets were registered
                                               long ago (their verdict is settled)
  POST /_bgcloud/ssm-invocation               {"instance_id", "status", "status_details",
                                               "stdout", "stderr", "response_code"}; status null
                                               clears it
  POST /_bgcloud/ssm-agent                    {"instance_id", "status"}: Online,
                                               ConnectionLost or unregistered
  POST /_bgcloud/latency                      {"access_key", "seconds"}: every request of
                                               that key waits that long before its answer
  POST /_bgcloud/faults                       {"access_key", "action", "status", "code",
                                               "times", "skip", "after_action",
                                               "unimplemented", "delay", "pass", "swallow",
                                               "body", "apply_then_fail"}: after `skip`
                                               matching requests pass (counted only once a
                                               request for `after_action` was seen, when given),
                                               fail the next `times` with that error;
                                               "unimplemented": answer as stock moto does for an
                                               action it lacks (500, an HTML page); "delay": s
                                               first; "pass": then handle it normally;
                                               "swallow": answer 200 with `body` without doing
                                               it; "apply_then_fail": do it, then fail;
                                               "action_prefix" instead of "action" matches
                                               every action that starts so (REST paths with ids);
                                               {"access_key", "clear": true} drops that key's
                                               faults
  POST /_bgcloud/cloudfront-etag              {"distribution_id", "after_reads"}: another
                                               writer changes it now, or right after each of
                                               the next `after_reads` GetDistributionConfig
  POST /_bgcloud/s3-put-before                {"access_key", "action", "bucket", "key", "body",
                                               "times", "skip"}: after `skip` matching requests
                                               pass, just before each of the next `times`
                                               requests matching (access key, action) is
                                               handled, another writer puts `body` there
  POST /_bgcloud/iam                          {"enforce": true|false}: IAM enforced from now on
                                               (requests must be signed by an identity whose
                                               policies allow them; model_iam.py), or not
  GET  /_bgcloud/timing                       the timing profile in force and its settings
  POST /_bgcloud/timing                       {"metric_delay": s, ...}: change settings (for the
                                               whole emulator; see timing.py)
  POST /_bgcloud/reset                        clear every control (of every test: tests that
                                               share an emulator clear only their own)

On by default, S3 and CloudFront behave as AWS does where moto is kinder (details in the
"S3 and CloudFront fidelity" section): requests signed for another region than the bucket's
get 301 PermanentRedirect with `x-amz-bucket-region`; SSE-KMS objects' ETags are not MD5s;
a reused invalidation CallerReference returns the first invalidation (same paths) or fails
with InvalidationBatchAlreadyExists (other paths); unencoded invalidation paths are
InvalidArgument.

Per-test access keys keep tests that share one emulator apart: requests are counted per key,
and faults apply only to the key that asked for them.

Real-instance lane controls (only with --lane, see model_lane.py):
  POST /_bgcloud/lane/info | lane/attach {"instance_ids"} | lane/publish {"repository", "tags"}
       lane/alb {"listener_arn", "metrics_period"} -> {"port"} | lane/alb-log {"listener_arn",
       "since"} | lane/cdn {"distribution_id"} -> {"port"}

Usage: emulator.py [--port N] [--port-file F] [--parent-pid P] [--lane lane.json]
                   [--profile aws|scaled]
  --profile sizes every modelled delay (timing.py): `aws` (the default) as AWS has them,
  `scaled` the same shapes in seconds, for the tests and the demo.
  --port 0 picks a free port; --port-file receives it once the server answers.
  --parent-pid makes the server exit when that process is gone, so a test run that is killed
  never leaves an emulator behind.
"""

import argparse
import hashlib
import json
import os
import re
import sys
import threading
import time
import urllib.parse

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from moto.cloudfront import models as cloudfront_models
from moto.cloudfront.exceptions import CloudFrontException
from moto.ec2.models import flow_logs as ec2_flow_logs
from moto.ecr import models as ecr_models
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)

# The AWS behaviours moto lacks, modelled in their own modules (each documents its controls).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import timing  # noqa: E402
import model_alb  # noqa: E402
import model_autoscaling  # noqa: E402,F401 (patches moto on import)
import model_cloudfront  # noqa: E402
import model_cloudwatch  # noqa: E402,F401 (patches moto on import)
import model_iam  # noqa: E402 (patches moto on import)
import lane_control  # noqa: E402
import model_lane  # noqa: E402
import model_ssm  # noqa: E402

LOCK = threading.Lock()
FAULTS = []  # dicts with access_key, action, status, code, times
LATENCY = {}  # access_key -> seconds every request of that key waits before it is answered
REQUESTS = {}  # access_key -> list of {"service", "action", "method", "path"}


# --- ECR ----------------------------------------------------------------------------------------
# A real image digest is the sha256 of the manifest's bytes (what `docker push` prints and
# `docker pull repo@digest` checks); stock moto hashes the layer digests instead.


def _manifest_digest(self):
    self._image_digest = "sha256:" + hashlib.sha256(self.image_manifest.encode()).hexdigest()


ecr_models.Image._create_digest = _manifest_digest


# --- VPC flow logs ------------------------------------------------------------------------------
# An S3 destination may name a folder (arn:aws:s3:::bucket/prefix/), as AWS documents; stock
# moto looks the whole "bucket/prefix/" up as a bucket name and refuses it.

_stock_create_flow_logs = ec2_flow_logs.FlowLogsBackend.create_flow_logs


def _create_flow_logs(self, resource_type, resource_ids, traffic_type, deliver_logs_permission_arn,
                      log_destination_type, log_destination, *args, **kwargs):
    folder = None
    if log_destination_type == "s3" and log_destination and log_destination.count(":") >= 5:
        head, _, path = log_destination.partition(":::")
        if "/" in path:
            folder = log_destination
            log_destination = f"{head}:::{path.split('/', 1)[0]}"
    created, unsuccessful = _stock_create_flow_logs(
        self, resource_type, resource_ids, traffic_type, deliver_logs_permission_arn,
        log_destination_type, log_destination, *args, **kwargs)
    for flow_log in created:
        if folder:
            flow_log.log_destination = folder
    return created, unsuccessful


ec2_flow_logs.FlowLogsBackend.create_flow_logs = _create_flow_logs


# --- CloudFront ---------------------------------------------------------------------------
# Stock moto accepts any If-Match and never changes a distribution's ETag; real CloudFront
# answers 412 PreconditionFailed to a stale one and issues a new ETag on every update (an update
# without If-Match is refused with InvalidIfMatchVersion, as stock moto already does). Stock
# invalidations say "COMPLETED" at once; real ones are InProgress for a while, then "Completed".

_stock_update_distribution = cloudfront_models.CloudFrontBackend.update_distribution


def _update_distribution(self, dist_config, _id, if_match):
    dist = self.distributions.get(_id)
    if dist is not None and if_match and if_match != dist.etag:
        raise CloudFrontException(
            "PreconditionFailed",
            "The precondition given in one or more of the request-header fields evaluated to false.",
        )
    _stock_update_distribution(self, dist_config, _id, if_match)
    dist = self.distributions[_id]
    dist.etag = cloudfront_models.random_id()
    dist.deployed_at = time.time() + timing.get("cf_propagation")
    return dist, dist.location, dist.etag


cloudfront_models.CloudFrontBackend.update_distribution = _update_distribution


def _distribution_status(self):
    # A created or updated distribution reads InProgress until the change has reached every
    # edge (timing.py cf_propagation; the lane CDN switches at the same moment), then Deployed.
    if time.time() < getattr(self, "deployed_at", 0.0):
        return "InProgress"
    return "Deployed"


_stock_distribution_init = cloudfront_models.Distribution.__init__


def _distribution_init(self, *args, **kwargs):
    _stock_distribution_init(self, *args, **kwargs)
    self.deployed_at = time.time() + timing.get("cf_propagation")


cloudfront_models.Distribution.__init__ = _distribution_init
# moto's state machine advances by calls; the property answers by time (its setter is ignored).
cloudfront_models.Distribution.status = property(_distribution_status, lambda self, value: None)

_stock_invalidation_init = cloudfront_models.Invalidation.__init__


def _invalidation_init(self, *args, **kwargs):
    _stock_invalidation_init(self, *args, **kwargs)
    self.created_at = time.time()


def _invalidation_status(self):
    # An invalidation reaches every edge over time: InProgress, then Completed (timing.py
    # cf_invalidation), as the API and the SDK waiter spell them.
    if time.time() < self.created_at + timing.get("cf_invalidation"):
        return "InProgress"
    return "Completed"


cloudfront_models.Invalidation.__init__ = _invalidation_init
# moto's __init__ assigns a status; the property ignores it and answers by time.
cloudfront_models.Invalidation.status = property(_invalidation_status, lambda self, value: None)


STALE_READS = {}  # distribution id -> how many more GetDistributionConfig answers go stale
_stock_get_distribution_config = cloudfront_models.CloudFrontBackend.get_distribution_config


def _get_distribution_config(self, _id):
    config, etag = _stock_get_distribution_config(self, _id)
    with LOCK:
        if STALE_READS.get(_id, 0) > 0:
            # Someone else updates the distribution right after this read.
            STALE_READS[_id] -= 1
            self.distributions[_id].etag = cloudfront_models.random_id()
    return config, etag


cloudfront_models.CloudFrontBackend.get_distribution_config = _get_distribution_config


def _rotate_etags(distribution_id):
    """Another writer changed the distribution: its ETag moves on."""
    for account in cloudfront_models.cloudfront_backends.values():
        for backend in account.values():
            dist = backend.distributions.get(distribution_id)
            if dist is not None:
                dist.etag = cloudfront_models.random_id()
                return True
    return False


# --- S3 and CloudFront fidelity ------------------------------------------------------------
# Where stock moto is kinder than AWS in ways bgcloud's S3 and CloudFront code depends on. All
# of it is on by default: no test can pass because the emulator forgave something.
#
# - Buckets live in a region. Real S3 answers a request signed for another region than the
#   bucket's with 301 PermanentRedirect and the bucket's region in `x-amz-bucket-region` (a
#   HEAD gets the status and header only); moto serves any bucket to any region.
# - SSE-KMS objects: real S3 ETags are not the MD5 of the content (they differ per write even
#   for equal content); moto gives every object its MD5.
# - CloudFront CallerReference: reusing one with the same paths returns the invalidation made
#   the first time (nothing is invalidated again); with other paths it is
#   InvalidationBatchAlreadyExists. moto makes a new invalidation every time.
# - CloudFront invalidation paths must start with "/" and be URL-encoded (no spaces, non-ASCII,
#   control or RFC 1738 unsafe characters, "%" only as an escape, "*" only at the end); real
#   CloudFront answers InvalidArgument, moto accepts anything.

from moto.s3 import models as s3_models

_SIGNED_REGION = re.compile(r"Credential=[^/]+/[^/]+/([^/]+)/s3/")


def _s3_bucket_region(name):
    """The region a bucket was created in, or None when there is no such bucket."""
    owner = s3_models.s3_backends.bucket_accounts.get(name)
    if owner is None:
        return None
    partition, account_id = owner
    bucket = s3_models.s3_backends[account_id][partition].buckets.get(name)
    return bucket.region_name if bucket is not None else None


def _s3_wrong_region(request):
    """Real S3's answer to a path-style request signed for another region than its bucket's."""
    signed = _SIGNED_REGION.search(request.headers.get("Authorization", ""))
    bucket = urllib.parse.unquote(request.path.lstrip("/").split("/", 1)[0])
    if signed is None or not bucket:
        return None
    region = _s3_bucket_region(bucket)
    if region is None or region == signed.group(1):
        return None
    headers = {"x-amz-bucket-region": region}
    if request.method == "HEAD":
        return Response(status=301, headers=headers)
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>PermanentRedirect</Code>'
        "<Message>The bucket you are attempting to access must be addressed using the specified "
        "endpoint. Please send all future requests to this endpoint.</Message>"
        f"<Endpoint>{bucket}.s3.{region}.amazonaws.com</Endpoint><Bucket>{bucket}</Bucket>"
        "<RequestId>bgcloud-region</RequestId></Error>"
    )
    return Response(body, status=301, headers=headers, mimetype="application/xml")


S3_PUT_BEFORE = []  # dicts with access_key, action, bucket, key, body, times


def _s3_put_before(access_key, action):
    """Another writer's PutObject, made just before the matching request is handled."""
    with LOCK:
        matching = [w for w in S3_PUT_BEFORE if w["access_key"] == access_key and w["action"] == action and w["times"] > 0]
        due = []
        for w in matching:
            if w.get("skip", 0) > 0:
                w["skip"] -= 1
                continue
            w["times"] -= 1
            due.append(w)
    for w in due:
        partition, account_id = s3_models.s3_backends.bucket_accounts[w["bucket"]]
        backend = s3_models.s3_backends[account_id][partition]
        backend.put_object(w["bucket"], w["key"], w["body"].encode("utf-8"))


def s3_fidelity_request(request, access_key, action):
    """Runs before moto sees an AWS request: a Response to send instead, or None."""
    _s3_put_before(access_key, action)
    return _s3_wrong_region(request)


def s3_fidelity_control(path, data):
    """Handles this section's controls (called with LOCK held); False when `path` is not one."""
    if path == "s3-put-before":
        data.setdefault("times", 1)
        S3_PUT_BEFORE.append(data)
        return True
    return False


def s3_fidelity_reset():
    S3_PUT_BEFORE.clear()


_KMS_ALGORITHMS = ("aws:kms", "aws:kms:dsse")
_stock_etag = s3_models.FakeKey.etag


def _etag(self):
    if getattr(self, "encryption", None) in _KMS_ALGORITHMS:
        # Fixed per stored object (conditional requests compare it), new on every write.
        if getattr(self, "_bgcloud_kms_etag", None) is None:
            self._bgcloud_kms_etag = '"' + os.urandom(16).hex() + '"'
        return self._bgcloud_kms_etag
    return _stock_etag.fget(self)


s3_models.FakeKey.etag = property(_etag)


_INVALID_PATH_CHAR = re.compile(r'[^\x21-\x7e]|["#<>\\^`{|}]|%(?![0-9A-Fa-f]{2})')
_stock_create_invalidation = cloudfront_models.CloudFrontBackend.create_invalidation


def _create_invalidation(self, dist_id, paths, caller_ref):
    for path in paths:
        if not path.startswith("/") or _INVALID_PATH_CHAR.search(path) or "*" in path[:-1]:
            raise CloudFrontException(
                "InvalidArgument", "Your request contains one or more invalid invalidation paths."
            )
    for earlier in self.invalidations.get(dist_id, []):
        if earlier.caller_ref == caller_ref:
            if sorted(earlier.paths) == sorted(paths):
                return earlier
            raise CloudFrontException(
                "InvalidationBatchAlreadyExists",
                f"Invalidation batch specified ({caller_ref}) already exists with different paths.",
            )
    return _stock_create_invalidation(self, dist_id, paths, caller_ref)


cloudfront_models.CloudFrontBackend.create_invalidation = _create_invalidation


# --- request log and faults ----------------------------------------------------------------

_CREDENTIAL = re.compile(r"Credential=([^/]+)/[^/]+/[^/]+/([^/]+)/")


def _describe(request, body):
    """(access key, service, action) of an AWS request."""
    auth = request.headers.get("Authorization", "")
    match = _CREDENTIAL.search(auth)
    access_key, service = (match.group(1), match.group(2)) if match else ("", "")
    target = request.headers.get("X-Amz-Target", "")
    if target:
        action = target.split(".")[-1]
    else:
        action = request.args.get("Action", "")
        if not action and body and request.mimetype == "application/x-www-form-urlencoded":
            action = urllib.parse.parse_qs(body.decode("utf-8", "replace")).get("Action", [""])[0]
        if not action:
            # REST APIs (S3, CloudFront): method and path say what it is; a server-side copy
            # is a PUT too, but sends no body.
            method = "COPY" if request.headers.get("x-amz-copy-source") else request.method
            action = f"{method} {request.path}"
    return access_key, service, action


class Controls:
    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        request = Request(environ)
        if request.path.startswith("/_bgcloud/"):
            if environ.get("bgcloud.lane_side"):
                # The lane's instances reach the AWS APIs, never the test controls.
                return _json({"error": "not here"}, 404)(environ, start_response)
            return self.control(request)(environ, start_response)
        body = request.get_data(cache=True)
        # get_data consumed the stream: hand moto a fresh one.
        environ["wsgi.input"] = _BytesInput(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        # The bytes the client signed (model_iam.py checks signatures over them).
        environ["bgcloud.raw_body"] = body
        access_key, service, action = _describe(request, body)
        entry = {
            "service": service,
            "action": action,
            "method": request.method,
            "path": request.path,
            "t": time.time(),
        }
        # Conditional writes (the lock, the record): which condition a request carried.
        for header in ("If-Match", "If-None-Match"):
            if request.headers.get(header):
                entry[header.lower().replace("-", "_")] = request.headers[header]
        answered = start_response

        def start_response(status, headers, exc_info=None):
            # The log says how each request was answered (an InvocationDoesNotExist is a 400),
            # and when: a request that came before another's answer cannot have waited for it
            # (tests count round trips by this, support::round_trips_before).
            entry["status"] = int(status.split(" ", 1)[0])
            entry["answered"] = time.time()
            return answered(status, headers, exc_info) if exc_info else answered(status, headers)

        with LOCK:
            REQUESTS.setdefault(access_key, []).append(entry)
            fault = None
            for f in FAULTS:
                if f["access_key"] != access_key:
                    continue
                if f.get("after_action") == action:
                    f["armed"] = True  # the fault applies from the next request on
                matches = f.get("action") == action or (
                    f.get("action_prefix") and action.startswith(f["action_prefix"])
                )
                if matches and f["times"] > 0:
                    if f.get("after_action") and not f.get("armed"):
                        continue
                    if f.get("skip", 0) > 0:
                        f["skip"] -= 1
                        continue
                    f["times"] -= 1
                    fault = f
                    # The log says which requests got an injected answer (and which).
                    entry["fault"] = f.get("code") or ("swallowed" if f.get("swallow") else "fault")
                    break
        if LATENCY.get(access_key):
            # A network's round trip (the bench measures round trips with it): requests sent
            # together wait together, as the server is threaded.
            time.sleep(LATENCY[access_key])
        if fault:
            if fault.get("delay"):
                # A slow answer: lets a test act (kill bgcloud) while this request is in flight.
                time.sleep(float(fault["delay"]))
            if fault.get("swallow"):
                # Answers as if done, without doing it: a write AWS acknowledged but did not apply
                # (what a read-back exists to catch).
                return Response(fault.get("body", ""), status=200, mimetype="text/xml")(
                    environ, start_response
                )
            if fault.get("apply_then_fail"):
                # Done, but the answer is lost: the SDK retries a write that already happened.
                list(self.app(environ, lambda *a, **k: None))
            elif fault.get("pass"):
                return self.app(environ, start_response)
            return _fault_response(fault, service)(environ, start_response)
        answer = None
        if service == "s3":
            answer = s3_fidelity_request(request, access_key, action)
        elif service == "cloudfront":
            answer = model_cloudfront.answer(request, body)
        if answer is not None:
            return answer(environ, start_response)
        response = self.app(environ, start_response)
        if service == "elasticloadbalancing" and action in model_alb.USAGE_ACTIONS:
            model_alb.refresh_usage()
        return response

    def control(self, request):
        path = request.path[len("/_bgcloud/") :]
        if path == "health":
            return _json({"ok": True})
        if path == "requests":
            with LOCK:
                return _json(list(REQUESTS.get(request.args.get("access_key", ""), [])))
        if path == "timing":
            if request.method == "GET":
                return _json(timing.describe())
            try:
                return _json(timing.update(json.loads(request.get_data() or b"{}")))
            except ValueError as e:
                return _json({"error": str(e)}, 400)
        if request.method != "POST":
            return _json({"error": f"unknown control {path}"}, 404)
        data = json.loads(request.get_data() or b"{}")
        try:
            answer = lane_control.control(path, data)
        except Exception as e:  # say what failed instead of a bare 500
            return _json({"error": f"{type(e).__name__}: {e}"}, 500)
        if answer is not None:
            return _json(answer, 500 if isinstance(answer, dict) and "error" in answer else 200)
        if model_alb.control(path, data) or model_ssm.control(path, data) or model_iam.control(path, data):
            return _json({"ok": True})
        with LOCK:
            if path == "latency":
                LATENCY[data["access_key"]] = float(data.get("seconds", 0))
            elif path == "faults":
                if data.get("clear"):
                    # One test's faults go; other tests' (other access keys) stay.
                    FAULTS[:] = [f for f in FAULTS if f["access_key"] != data["access_key"]]
                else:
                    data.setdefault("times", 1)
                    FAULTS.append(data)
            elif path == "cloudfront-etag":
                if data.get("after_reads"):
                    STALE_READS[data["distribution_id"]] = int(data["after_reads"])
                elif not _rotate_etags(data["distribution_id"]):
                    return _json({"error": "no such distribution"}, 404)
            elif s3_fidelity_control(path, data):
                pass
            elif path == "reset":
                s3_fidelity_reset()
                model_alb.reset()
                model_ssm.reset()
                STALE_READS.clear()
                FAULTS.clear()
                LATENCY.clear()
                REQUESTS.clear()
            else:
                return _json({"error": f"unknown control {path}"}, 404)
        return _json({"ok": True})


class _BytesInput:
    def __init__(self, data):
        self._data = data
        self._pos = 0

    def read(self, size=-1):
        if size is None or size < 0:
            size = len(self._data) - self._pos
        chunk = self._data[self._pos : self._pos + size]
        self._pos += len(chunk)
        return chunk

    def readline(self, size=-1):
        end = self._data.find(b"\n", self._pos)
        end = len(self._data) if end < 0 else end + 1
        if size is not None and size >= 0:
            end = min(end, self._pos + size)
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk


def _json(obj, status=200):
    return Response(json.dumps(obj), status=status, mimetype="application/json")


def _fault_response(fault, service):
    if fault.get("unimplemented"):
        page = "<!doctype html>\n<title>500 Internal Server Error</title>\n<h1>Internal Server Error</h1>"
        return Response(page, status=500, mimetype="text/html")
    status = int(fault.get("status", 503))
    code = fault.get("code", "ServiceUnavailable")
    message = f"injected fault ({code})"
    if service in ("ssm", "ecr"):  # JSON protocols
        body = json.dumps({"__type": code, "message": message})
        return Response(body, status=status, mimetype="application/x-amz-json-1.1")
    body = (
        f'<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message>'
        f"</Error><RequestId>bgcloud-fault</RequestId></ErrorResponse>"
    )
    if service == "s3":
        body = f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    return Response(body, status=status, mimetype="text/xml")


# --- main ----------------------------------------------------------------------------------


def _watch_parent(pid, server):
    while True:
        time.sleep(0.5)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            server.shutdown()
            return
        except PermissionError:
            pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file")
    parser.add_argument("--parent-pid", type=int)
    parser.add_argument("--lane", help="lane.json of a real-instance lane (lane/lane.py up)")
    parser.add_argument("--profile", default="aws", choices=sorted(timing.PROFILES),
                        help="the size of every modelled delay (timing.py)")
    args = parser.parse_args()
    timing.use(args.profile)

    app = Controls(DomainDispatcherApplication(create_backend_app))
    server = make_server(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    port = server.server_address[1]
    os.environ["MOTO_PORT"] = str(port)
    if args.lane:
        model_lane.setup(args.lane, port)
        # The instances call the AWS APIs (ECR login, SSM parameters) on the lane's host
        # address, same port.
        def lane_side(environ, start_response):
            environ["bgcloud.lane_side"] = True
            return app(environ, start_response)

        lane_server = make_server(model_lane.LANE["host_ip"], port, lane_side, threaded=True,
                                  request_handler=MotoRequestHandler)
        threading.Thread(target=lane_server.serve_forever, daemon=True).start()
    if args.parent_pid:
        threading.Thread(target=_watch_parent, args=(args.parent_pid, server), daemon=True).start()
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(port))
        os.replace(tmp, args.port_file)
    print(f"bgcloud emulator listening on http://{args.host}:{port}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
