"""The lane's ALB data plane: an HTTP listener on 127.0.0.1 that serves a listener the way an
ALB does, from the emulator's live state.

- The listener's rules are evaluated first, lowest priority number first; the first whose
  conditions all match answers, else the default action. Conditions understood: http-header
  (name case-insensitive, values case-insensitive with * and ? wildcards), path-pattern
  (case-sensitive, wildcards) and host-header; a rule with any other condition never matches
  here. A rule whose action is a fixed response answers it (status, content type, body).
- Rules and actions are read at every request as the load balancer's nodes have them: a
  listener or rule change takes effect `elb_propagation` after it was made (localstack/timing.py,
  model_alb.data_plane); until then requests are routed by the previous configuration.
- Each request goes to blue or green by the forward action's weights — unless the forward has target-group stickiness on and the request carries the
  load balancer's `AWSALBTG` cookie naming a group of the forward: then to that group, whatever
  the weights, until the cookie expires (the ALB's weighted-target-group stickiness); a request
  routed by weight gets the cookie. Then to a healthy target of that group (round robin); a draining target gets no
  new requests but finishes the ones it has. No healthy target: every registered target is
  tried (the ALB "fails open"); none registered: 503. A target that cannot be reached or
  answers garbage: 502; no answer in time: 504. A request is never retried (an ALB does not).
- Keep-alive with the client, `X-Forwarded-For`/`-Proto`/`-Port` to the target.
- Every request is logged (time, target group, target, status, who made the status: `target`
  or `elb`, the answering version from `X-App-Version`) for the tests to read (control
  `lane/alb-log`).
- The ALB's CloudWatch metrics go to the emulator's CloudWatch every period (namespace
  AWS/ApplicationELB), as the ALB's metrics page defines them. Per target group (dimensions
  TargetGroup and LoadBalancer): RequestCount (every request a target was chosen for, answered
  or not), HTTPCode_Target_2XX/3XX/4XX/5XX_Count (only what targets answered), TargetResponseTime
  (targets' answers), TargetConnectionErrorCount (connections to a target that could not be
  made), HealthyHostCount and UnHealthyHostCount (as a routing node sees them). Per load
  balancer (dimension LoadBalancer only): HTTPCode_ELB_5XX_Count, HTTPCode_ELB_502_Count,
  HTTPCode_ELB_503_Count, HTTPCode_ELB_504_Count: the errors the load balancer made itself (a
  crashed or refusing target: 502; none to route to: 503; no answer in time: 504), which the
  HTTPCode_Target_* counts never include.
- A target's answer may take at most TARGET_TIMEOUT seconds (the ALB's idle timeout, 60 s by
  default; short here so a test of a hanging target takes seconds).
"""

import fnmatch
import http.client
import itertools
import sys
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from moto.cloudwatch import models as cloudwatch_models
from moto.ec2 import models as ec2_models
from moto.elbv2 import models as elbv2_models

import model_alb
import model_lane

PLANES = {}  # listener_arn -> DataPlane
LOCK = threading.Lock()
# Seconds a target may take to answer before the load balancer gives up with 504 (an ALB's idle
# timeout, 60 s by default).
TARGET_TIMEOUT = 10
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
              "trailer", "upgrade", "host"}


def _find_listener(arn):
    for account in elbv2_models.elbv2_backends.values():
        for backend in account.values():
            for lb in backend.load_balancers.values():
                if arn in lb.listeners:
                    return backend, lb, lb.listeners[arn]
    raise KeyError(f"no listener {arn}")


def _matches(condition, path, headers):
    field = condition.get("Field")
    if field == "http-header":
        config = condition.get("HttpHeaderConfig") or {}
        sent = headers.get_all(config.get("HttpHeaderName", "")) or []
        return any(fnmatch.fnmatch(v.lower(), p.lower()) for v in sent for p in config.get("Values", []))
    if field == "path-pattern":
        patterns = (condition.get("PathPatternConfig") or {}).get("Values") or condition.get("Values") or []
        return any(fnmatch.fnmatchcase(path.split("?")[0], p) for p in patterns)
    if field == "host-header":
        patterns = (condition.get("HostHeaderConfig") or {}).get("Values") or condition.get("Values") or []
        host = (headers.get("Host") or "").split(":")[0].lower()
        return any(fnmatch.fnmatch(host, p.lower()) for p in patterns)
    return False


def _actions(listener, path, headers):
    """(rule priority or "default", the actions that answer this request)."""
    rules = sorted(listener._non_default_rules.values(), key=lambda r: int(r.priority))
    for rule in rules:
        if rule.conditions and all(_matches(c, path, headers) for c in rule.conditions):
            return str(rule.priority), rule.actions
    return "default", listener.default_actions


def _stickiness(actions):
    """The forward's stickiness duration in seconds when it is on, else None."""
    for action in actions:
        data = getattr(action, "data", {}) or {}
        if data.get("Type", "").lower() != "forward":
            continue
        config = (data.get("ForwardConfig") or {}).get("TargetGroupStickinessConfig") or {}
        if str(config.get("Enabled", "false")).lower() == "true":
            return int(config.get("DurationSeconds") or 3600)
    return None


STICKY_COOKIE = "AWSALBTG"


def _sticky_group(headers, arns):
    """The group a valid AWSALBTG cookie binds this client to, if it is one of `arns`."""
    for part in (headers.get("Cookie") or "").split(";"):
        name, _, value = part.strip().partition("=")
        if name != STICKY_COOKIE:
            continue
        arn, _, expires = value.rpartition("|")
        if arn in arns and expires.isdigit() and int(expires) > time.time():
            return arn
    return None


def _fixed_response(actions):
    """(status, content type, body) of a fixed-response action, if the actions have one and no
    forward before it."""
    for action in sorted(actions, key=lambda a: int((getattr(a, "data", {}) or {}).get("Order") or 0)):
        data = getattr(action, "data", {}) or {}
        kind = data.get("Type", "").lower()
        if kind == "forward":
            return None
        if kind == "fixed-response":
            config = data.get("FixedResponseConfig") or {}
            return (int(config.get("StatusCode") or 503), config.get("ContentType") or "text/plain",
                    (config.get("MessageBody") or "").encode())
    return None


def _weights(actions):
    """[(target group ARN, weight)] of the forward action, as written now."""
    for action in actions:
        data = getattr(action, "data", {}) or {}
        if data.get("Type", "").lower() != "forward":
            continue
        groups = (data.get("ForwardConfig") or {}).get("TargetGroups") or []
        if groups:
            return [(g["TargetGroupArn"], int(g.get("Weight", 1))) for g in groups]
        if data.get("TargetGroupArn"):
            return [(data["TargetGroupArn"], 1)]
    return []


class DataPlane:
    def __init__(self, listener_arn, metrics_period):
        self.listener_arn = listener_arn
        self.backend, self.lb, _ = _find_listener(listener_arn)
        self.log = []
        self.round_robin = itertools.count()
        self.metrics_period = metrics_period
        self.counters = {}
        self.lb_counters = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.plane = self
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        threading.Thread(target=self._publish_metrics, daemon=True).start()

    def pick(self, path, headers):
        """(rule, target group, (ip, port, target id), Set-Cookie, fixed response) for one
        request; target None: nothing to route to; a fixed response (status, type, body) when
        the matching rule answers itself."""
        _, _, listener = _find_listener(self.listener_arn)
        # As the load balancer's nodes have it: a change takes effect only after it propagated.
        listener = model_alb.data_plane(listener)
        rule, actions = _actions(listener, path, headers)
        fixed = _fixed_response(actions)
        if fixed is not None:
            return rule, None, None, None, fixed
        tg, target, cookie = self._pick_from(actions, headers)
        return rule, tg, target, cookie, None

    def _pick_from(self, actions, headers):
        """(target group, target, Set-Cookie value or None) for a request."""
        duration = _stickiness(actions)
        bound = duration and _sticky_group(headers, {arn for arn, _ in _weights(actions)})
        cookie = None
        if bound:
            arn = bound  # whatever the weights say, the weight-0 group included
        else:
            weighted = [(a, w) for a, w in _weights(actions) if w > 0]
            if not weighted:
                return None, None, None
            arns, weights = zip(*weighted)
            arn = random.choices(arns, weights=weights)[0]
            if duration:
                cookie = f"{STICKY_COOKIE}={arn}|{int(time.time() + duration)}; Path=/"
        tg = self.backend.target_groups[arn]
        ec2 = ec2_models.ec2_backends[tg.account_id][tg.region_name]
        serving, all_registered = [], []
        for target_id, port in model_alb.targets_of(tg.arn):
            # As one of the load balancer's nodes routes: by its own verdict on the target.
            state = model_alb.health(tg, target_id, port, ec2, view="any")
            lane_instance = model_lane.instance(target_id)
            if state is None or state[0] == "draining" or lane_instance is None:
                continue
            entry = (lane_instance["ip"], port, target_id)
            all_registered.append(entry)
            if state[0] == "healthy":
                serving.append(entry)
        candidates = serving or all_registered  # fail open, as the ALB does
        if not candidates:
            return tg, None, cookie
        return tg, candidates[next(self.round_robin) % len(candidates)], cookie

    def record(self, rule, tg, target, status, version, seconds, by="target", connected=True):
        """One request: `by` says who made the status (`target`, or `elb` when the load balancer
        answered itself); `connected` is False when no connection to the target was made."""
        entry = {
            "t": time.time(),
            "rule": rule,
            "target_group": tg.name if tg else None,
            "target": f"{target[2]}:{target[1]}" if target else None,
            "status": status,
            "by": by,
            "version": version,
            "ms": round(seconds * 1000, 1),
        }
        with LOCK:
            self.log.append(entry)
            if by == "elb":
                lb = self.lb_counters
                lb[f"{status // 100}XX"] = lb.get(f"{status // 100}XX", 0) + 1
                lb[str(status)] = lb.get(str(status), 0) + 1
            if tg is None or target is None:
                return  # no target chosen: not in the group's RequestCount
            c = self.counters.setdefault(tg.arn, {"n": 0, "times": {}, "conn_errors": 0})
            c["n"] += 1
            if not connected:
                c["conn_errors"] += 1
            if by == "target":
                c[str(status)[0]] = c.get(str(status)[0], 0) + 1
                # Response times by the millisecond, sent as values and counts (for p99).
                ms = round(seconds, 3)
                c["times"][ms] = c["times"].get(ms, 0) + 1

    def _publish_metrics(self):
        while True:
            time.sleep(self.metrics_period)
            try:
                self._publish_once()
            except Exception as e:  # keep publishing; say what went wrong
                print(f"lane ALB: publishing metrics failed: {e!r}", file=sys.stderr, flush=True)

    def _publish_once(self):
        with LOCK:
            counters, self.counters = self.counters, {}
            lb_counters, self.lb_counters = self.lb_counters, {}
        lb_dim = {"Name": "LoadBalancer", "Value": self.lb.arn.split(":loadbalancer/")[-1]}
        cw = None
        _, _, listener = _find_listener(self.listener_arn)
        # The groups the listener forwards to (host counts every period), and any that served.
        arns = {arn for arn, _ in _weights(listener.default_actions)} | set(counters)
        for arn in sorted(arns):
            tg = self.backend.target_groups.get(arn)
            if tg is None:
                continue
            cw = cloudwatch_models.cloudwatch_backends[tg.account_id][tg.region_name]
            dims = [{"Name": "TargetGroup", "Value": tg.arn.split(":")[-1]}, lb_dim]
            c = counters.get(tg.arn)
            data = self._host_counts(tg, dims)
            if c:
                data += [
                    {"MetricName": name, "Value": value, "Unit": "Count", "Dimensions": dims}
                    for name, value in [
                        ("RequestCount", c["n"]),
                        ("HTTPCode_Target_2XX_Count", c.get("2", 0)),
                        ("HTTPCode_Target_3XX_Count", c.get("3", 0)),
                        ("HTTPCode_Target_4XX_Count", c.get("4", 0)),
                        ("HTTPCode_Target_5XX_Count", c.get("5", 0)),
                        ("TargetConnectionErrorCount", c["conn_errors"]),
                    ]
                ]
                times = sorted(c["times"].items())
                for i in range(0, len(times), 150):  # PutMetricData takes 150 values a datum
                    chunk = times[i : i + 150]
                    data.append({
                        "MetricName": "TargetResponseTime", "Unit": "Seconds", "Dimensions": dims,
                        "Values": [float(v) for v, _ in chunk],
                        "Counts": [float(n) for _, n in chunk],
                    })
            cw.put_metric_data("AWS/ApplicationELB", data)
        if lb_counters and cw is not None:
            cw.put_metric_data("AWS/ApplicationELB", [
                {"MetricName": f"HTTPCode_ELB_{code}_Count", "Value": n, "Unit": "Count",
                 "Dimensions": [lb_dim]}
                for code, n in lb_counters.items()
            ])

    def _host_counts(self, tg, dims):
        """HealthyHostCount and UnHealthyHostCount of the group, as a routing node sees it."""
        ec2 = ec2_models.ec2_backends[tg.account_id][tg.region_name]
        healthy = unhealthy = 0
        for target_id, port in model_alb.targets_of(tg.arn):
            state = model_alb.health(tg, target_id, port, ec2, view="any")
            if state is None or state[0] in ("draining", "unused"):
                continue
            if state[0] == "healthy":
                healthy += 1
            elif state[0] == "unhealthy":
                unhealthy += 1
        return [
            {"MetricName": "HealthyHostCount", "Value": healthy, "Unit": "Count", "Dimensions": dims},
            {"MetricName": "UnHealthyHostCount", "Value": unhealthy, "Unit": "Count",
             "Dimensions": dims},
        ]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive with the client

    def log_message(self, *args):
        pass

    def _answer(self, status, body, headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _proxy(self):
        plane = self.server.plane
        started = time.time()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        rule, tg, target, cookie, fixed = plane.pick(self.path, self.headers)
        if fixed is not None:
            status, content_type, body = fixed
            plane.record(rule, None, None, status, None, time.time() - started, by="elb")
            self._answer(status, body, [("Content-Type", content_type)])
            return
        sticky = [("Set-Cookie", cookie)] if cookie else []
        if target is None:
            plane.record(rule, tg, None, 503, None, time.time() - started, by="elb")
            self._answer(503, b"<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>",
                         [("Content-Type", "text/html")] + sticky)
            return
        ip, port, _ = target
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        forwarded = self.headers.get("X-Forwarded-For")
        client = self.client_address[0]
        headers["X-Forwarded-For"] = f"{forwarded}, {client}" if forwarded else client
        headers["X-Forwarded-Proto"] = "http"
        headers["X-Forwarded-Port"] = str(self.server.server_address[1])
        headers["Host"] = self.headers.get("Host", f"127.0.0.1:{plane.port}")
        conn = http.client.HTTPConnection(ip, port, timeout=TARGET_TIMEOUT)
        try:
            conn.connect()
        except OSError:
            # Refused (a crashed container between restarts), reset, unreachable: 502, and a
            # target connection error.
            plane.record(rule, tg, target, 502, None, time.time() - started, by="elb",
                         connected=False)
            self._answer(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>",
                         [("Content-Type", "text/html")] + sticky)
            return
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            out_headers = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP
                           and k.lower() != "content-length"]
            status, version = resp.status, resp.getheader("X-App-Version")
            conn.close()
        except TimeoutError:
            plane.record(rule, tg, target, 504, None, time.time() - started, by="elb")
            self._answer(504, b"<html><body><h1>504 Gateway Time-out</h1></body></html>",
                         [("Content-Type", "text/html")] + sticky)
            return
        except (OSError, http.client.HTTPException):
            # The target closed or reset the connection without an answer (it crashed): 502.
            plane.record(rule, tg, target, 502, None, time.time() - started, by="elb")
            self._answer(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>",
                         [("Content-Type", "text/html")] + sticky)
            return
        plane.record(rule, tg, target, status, version, time.time() - started)
        self._answer(status, data, out_headers + sticky)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _proxy


def serve(listener_arn, metrics_period=60):
    """Starts (once) the data plane for a listener; returns its port on 127.0.0.1."""
    with LOCK:
        plane = PLANES.get(listener_arn)
        if plane is None:
            plane = PLANES[listener_arn] = DataPlane(listener_arn, float(metrics_period))
    return plane.port


def log(listener_arn, since=0):
    with LOCK:
        plane = PLANES.get(listener_arn)
        return [e for e in plane.log if e["t"] >= since] if plane else []
