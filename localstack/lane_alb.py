"""The lane's ALB data plane: an HTTP listener on 127.0.0.1 that serves a listener the way an
ALB does, from the emulator's live state.

- The listener's rules are evaluated first, lowest priority number first; the first whose
  conditions all match answers, else the default action. Conditions understood: http-header
  (name case-insensitive, values case-insensitive with * and ? wildcards), path-pattern
  (case-sensitive, wildcards) and host-header; a rule with any other condition never matches
  here.
- Each request goes to blue or green by the forward action's current weights (read at every
  request), then to a healthy target of that group (round robin); a draining target gets no
  new requests but finishes the ones it has. No healthy target: every registered target is
  tried (the ALB "fails open"); none registered: 503. A target that cannot be reached or
  answers garbage: 502; no answer in time: 504. A request is never retried (an ALB does not).
- Keep-alive with the client, `X-Forwarded-For`/`-Proto`/`-Port` to the target.
- Every request is logged (time, target group, target, status, the answering version from
  `X-App-Version`) for the tests to read (control `lane/alb-log`).
- Per target group, the ALB's CloudWatch metrics go to the emulator's CloudWatch every period
  (namespace AWS/ApplicationELB, dimensions TargetGroup and LoadBalancer): RequestCount,
  HTTPCode_Target_2XX/4XX/5XX_Count, TargetResponseTime.
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
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.plane = self
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        threading.Thread(target=self._publish_metrics, daemon=True).start()

    def pick(self, path, headers):
        """(rule, target group, (ip, port, target id)) for one request, or (rule, tg, None)."""
        _, _, listener = _find_listener(self.listener_arn)
        rule, actions = _actions(listener, path, headers)
        tg, target = self._pick_from(actions)
        return rule, tg, target

    def _pick_from(self, actions):
        weighted = [(arn, w) for arn, w in _weights(actions) if w > 0]
        if not weighted:
            return None, None
        arns, weights = zip(*weighted)
        tg = self.backend.target_groups[random.choices(arns, weights=weights)[0]]
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
            return tg, None
        return tg, candidates[next(self.round_robin) % len(candidates)]

    def record(self, rule, tg, target, status, version, seconds):
        entry = {
            "t": time.time(),
            "rule": rule,
            "target_group": tg.name if tg else None,
            "target": f"{target[2]}:{target[1]}" if target else None,
            "status": status,
            "version": version,
            "ms": round(seconds * 1000, 1),
        }
        with LOCK:
            self.log.append(entry)
            if tg is not None:
                c = self.counters.setdefault(tg.arn, {"n": 0, "2": 0, "4": 0, "5": 0, "times": {}})
                c["n"] += 1
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
        for tg_arn, c in counters.items():
            tg = self.backend.target_groups.get(tg_arn)
            if tg is None:
                continue
            dims = [
                {"Name": "TargetGroup", "Value": tg_arn.split(":")[-1]},
                {"Name": "LoadBalancer", "Value": self.lb.arn.split(":loadbalancer/")[-1]},
            ]
            data = [
                {"MetricName": name, "Value": value, "Unit": "Count", "Dimensions": dims}
                for name, value in [
                    ("RequestCount", c["n"]),
                    ("HTTPCode_Target_2XX_Count", c.get("2", 0)),
                    ("HTTPCode_Target_4XX_Count", c.get("4", 0)),
                    ("HTTPCode_Target_5XX_Count", c.get("5", 0)),
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
            cw = cloudwatch_models.cloudwatch_backends[tg.account_id][tg.region_name]
            cw.put_metric_data("AWS/ApplicationELB", data)


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
        rule, tg, target = plane.pick(self.path, self.headers)
        if target is None:
            plane.record(rule, tg, None, 503, None, time.time() - started)
            self._answer(503, b"<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>",
                         [("Content-Type", "text/html")])
            return
        ip, port, _ = target
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        forwarded = self.headers.get("X-Forwarded-For")
        client = self.client_address[0]
        headers["X-Forwarded-For"] = f"{forwarded}, {client}" if forwarded else client
        headers["X-Forwarded-Proto"] = "http"
        headers["X-Forwarded-Port"] = str(self.server.server_address[1])
        headers["Host"] = self.headers.get("Host", f"127.0.0.1:{plane.port}")
        try:
            conn = http.client.HTTPConnection(ip, port, timeout=10)
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            out_headers = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP
                           and k.lower() != "content-length"]
            status, version = resp.status, resp.getheader("X-App-Version")
            conn.close()
        except TimeoutError:
            plane.record(rule, tg, target, 504, None, time.time() - started)
            self._answer(504, b"<html><body><h1>504 Gateway Time-out</h1></body></html>",
                         [("Content-Type", "text/html")])
            return
        except (OSError, http.client.HTTPException):
            plane.record(rule, tg, target, 502, None, time.time() - started)
            self._answer(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>",
                         [("Content-Type", "text/html")])
            return
        plane.record(rule, tg, target, status, version, time.time() - started)
        self._answer(status, data, out_headers)

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
