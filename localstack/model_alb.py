"""The ALB's health checking, modelled on top of moto (which calls every target healthy).

What real ELBv2 does and this module makes moto do:
- Targets are keyed by instance id *and* port: one instance can be registered twice on two ports.
- A registered target starts `initial` (Elb.RegistrationInProgress, then Elb.InitialHealthChecking)
  and the ALB checks it every HealthCheckIntervalSeconds. It turns `healthy` after
  HealthyThresholdCount consecutive passes and `unhealthy` after UnhealthyThresholdCount
  consecutive failures; from either verdict it needs as many opposite results to change. So a
  target that was healthy **keeps reading healthy** for a while after its container is replaced
  by a broken one: the stale verdict the health gate must not trust.
- A target group that no listener or rule forwards to is not checked: its targets read `unused`
  (Target.NotInUse). When a forward starts using it, its targets start again from `initial`.
- DeregisterTargets of a target that is not registered (or already draining) succeeds and changes
  nothing, as the API reference says (moto refuses it with InvalidTarget); an instance id that
  does not exist is InvalidTarget.
- DeregisterTargets leaves the target `draining` (Target.DeregistrationInProgress) for the
  group's deregistration delay; registering it again starts it from `initial`.

What a check sees is the "container" on the instance's port: by default something that answers
200 (the stack is assumed to run an app there); the SSM model (ssm.py) starts a new container at
each launch, which behaves as its image was told to (control `image-behaviour`), and the
`container` control sets one directly (one that bgcloud's inspect script does not list: no
launch started it, so it has no name or labels). A behaviour is {"status": N} (an HTTP answer), {"down":
true} (connection refused), {"timeout": true}, {"firewalled": true} (answers on the instance,
but the ALB's checks time out: a security group without the ALB's ingress), optionally {"then": {"after": S, ...}}: after S
seconds it behaves as the inner one.

Health-check intervals below AWS's 5 s minimum are accepted, for test speed (the health check
timeout is then capped below the interval).

Listener rules, as the API reference states and moto does not check: a priority is 1-50000
(CreateRule, SetRulePriorities: ValidationError), a load balancer holds at most 100 rules besides
its listeners' default rules (TooManyRules), a rule's conditions hold at most 5 values together
(CreateRule, ModifyRule: ValidationError), DescribeAccountLimits names both quotas as it does on
AWS (moto's list lacks condition-values-per-alb-rule), and DescribeTags takes at most 20
resource ARNs (ValidationError).
"""

import copy
import hashlib
import random
import re
import threading
import time
from collections import OrderedDict

from moto.elbv2 import models as elbv2_models
from moto.elbv2 import exceptions as elbv2_exceptions
from moto.elbv2 import responses as elbv2_responses
from moto.elbv2.exceptions import (
    ELBClientError,
    InvalidTargetError,
    TargetGroupNotFoundError,
    TargetNotRunning,
    ValidationError,
)

import timing  # noqa: E402

LOCK = threading.RLock()
TARGETS = {}  # (tg_arn, id, port) -> Target
USAGE = {}  # tg_arn -> time since when a forward uses it, or None
CONTAINERS = {}  # (instance_id, port) -> [(start time, behaviour, name, digest)]
FORCED = {}  # (tg_arn, target_id) -> [[state dict, answers left], ...]: control target-health
IMAGES = {}  # image digest -> behaviour of containers started from it
DEFAULT_BEHAVIOUR = {"status": 200}


class Node:
    """One load-balancer node's view of a target: the ALB checks each target from every node,
    each on its own schedule, and each node keeps its own verdict."""

    def __init__(self, phase):
        self.phase = phase
        self.reset()

    def reset(self):
        self.state = "initial"
        self.reason = "Elb.RegistrationInProgress"
        self.description = "Target registration is in progress"
        self.passes = 0
        self.fails = 0
        self.next_check = None

    def view(self):
        return self.state, self.reason, self.description


class Target:
    def __init__(self, now, tg_arn, target_id, port):
        self.id = target_id
        self.port = port
        self.registered_at = now
        self.draining_until = None
        # Checks are spread over the interval, each node at its own phase, as the ALB's nodes
        # check; fixed per target so a test run is repeatable.
        digest = hashlib.sha256(f"{tg_arn}{target_id}{port}".encode()).digest()
        nodes = max(1, int(timing.get("alb_nodes")))
        self.nodes = [Node(0.1 + 0.8 * digest[i] / 255) for i in range(nodes)]
        # DescribeTargetHealth answers from one node's view after another: successive reads
        # may disagree while the nodes' verdicts differ (how AWS aggregates them is not
        # documented; bgcloud must not depend on it).
        self.reads = 0
        self.reset(now)

    def reset(self, since):
        self.since = since
        for node in self.nodes:
            node.reset()

    def api_view(self):
        node = self.nodes[self.reads % len(self.nodes)]
        self.reads += 1
        return node.view()

    def any_view(self):
        """What one node, chosen at random, thinks: how a request through the data plane is
        routed."""
        return random.choice(self.nodes).view()


# --- what a check sees ------------------------------------------------------------------------


def behaviour_at(instance_id, port, t):
    """The behaviour of the container on instance:port at time t, and when it started."""
    start, behaviour = 0.0, DEFAULT_BEHAVIOUR
    for s, b, _, _ in CONTAINERS.get((instance_id, port), []):
        if s <= t:
            start, behaviour = s, b
    while "then" in behaviour and t - start >= float(behaviour["then"].get("after", 0)):
        start, behaviour = start + float(behaviour["then"].get("after", 0)), behaviour["then"]
    return behaviour


def matches(matcher, status):
    """Whether an HTTP status passes a target group matcher such as 200, 200-399 or 200,302."""
    for part in (matcher or "200").split(","):
        lo, _, hi = part.strip().partition("-")
        if lo and int(lo) <= status <= int(hi or lo):
            return True
    return False


def check(tg, target, t):
    """One health check at time t: (passed, reason, description)."""
    b = behaviour_at(target.id, target.port, t)
    if b.get("down"):
        return False, "Target.FailedHealthChecks", "Health checks failed"
    if b.get("timeout") or b.get("firewalled"):
        return False, "Target.Timeout", "Request timed out"
    status = int(b.get("status", 200))
    matcher = (getattr(tg, "matcher", None) or {}).get("HttpCode", "200")
    if matches(matcher, status):
        return True, None, None
    return False, "Target.ResponseCodeMismatch", f"Health checks failed with these codes: [{status}]"


# --- the state machine ------------------------------------------------------------------------


def _in_use(tg_arn):
    """Whether any listener or rule forwards to the group (any weight, 0 included)."""
    for account in elbv2_models.elbv2_backends.values():
        for backend in account.values():
            for lb in backend.load_balancers.values():
                for listener in lb.listeners.values():
                    actions = list(listener.default_actions)
                    for rule in listener._non_default_rules.values():
                        actions.extend(rule.actions)
                    for action in actions:
                        data = getattr(action, "data", {}) or {}
                        if data.get("TargetGroupArn") == tg_arn:
                            return True
                        groups = (data.get("ForwardConfig") or {}).get("TargetGroups", [])
                        if any(g.get("TargetGroupArn") == tg_arn for g in groups):
                            return True
    return False


def refresh_usage(now=None):
    """Called after every listener or rule change: groups that start being used start checking."""
    now = now or time.time()
    with LOCK:
        arns = {k[0] for k in TARGETS} | set(USAGE)
        for arn in arns:
            used = _in_use(arn)
            if used and USAGE.get(arn) is None:
                USAGE[arn] = now
            elif not used:
                USAGE[arn] = None


def _evaluate(tg, target, now, view="api"):
    """Brings the target's verdict up to `now`; returns (state, reason, description) as
    DescribeTargetHealth answers (`api`: one node's view after another) or as a data-plane node
    routes (`any`)."""
    if target.draining_until is not None:
        return "draining", "Target.DeregistrationInProgress", "Target deregistration is in progress"
    if not tg.health_check_enabled:
        return "unavailable", "Target.HealthCheckDisabled", "Health checks are disabled"
    used_since = USAGE.get(tg.arn)
    if used_since is None:
        target.reset(now)
        return "unused", "Target.NotInUse", "Target group is not configured to receive traffic from the load balancer"
    since = max(target.registered_at, used_since)
    if target.since != since:
        target.reset(since)
    interval = float(tg.health_check_interval_seconds)
    healthy_n = int(tg.healthy_threshold_count)
    unhealthy_n = int(tg.unhealthy_threshold_count)
    for node in target.nodes:
        if node.next_check is None:
            node.next_check = since + node.phase * interval
        # Long idle stretches: the verdict only depends on the last few checks.
        skip = int((now - node.next_check) / interval) - 4 * max(healthy_n, unhealthy_n)
        if skip > 0:
            node.next_check += skip * interval
        if is_real(target.id):
            continue  # real checks advance it
        while node.next_check <= now:
            result = check(tg, target, node.next_check)
            node.next_check += interval
            _step(tg, node, *result)
    return target.api_view() if view == "api" else target.any_view()


def _step(tg, node, passed, reason, description):
    """One check's result applied to a node's verdict, as the ALB does: a newly registered
    target is healthy after one passing check ("After your target is registered, it must pass
    one health check to be considered healthy"); after that, a verdict changes only after the
    thresholds' worth of checks in a row."""
    healthy_n = int(tg.healthy_threshold_count)
    unhealthy_n = int(tg.unhealthy_threshold_count)
    if node.state == "initial" and node.reason == "Elb.RegistrationInProgress":
        node.reason = "Elb.InitialHealthChecking"
        node.description = "Initial health checks in progress"
    if passed:
        node.passes += 1
        node.fails = 0
        needed = 1 if node.state == "initial" else healthy_n
        if node.state != "healthy" and node.passes >= needed:
            node.state, node.reason, node.description = "healthy", None, None
    else:
        node.fails += 1
        node.passes = 0
        if node.state == "unhealthy" or node.fails >= unhealthy_n:
            node.state, node.reason, node.description = "unhealthy", reason, description


# Targets whose checks are real HTTP requests (the real-instance lane sets this).
is_real = lambda target_id: False  # noqa: E731


def due_real_checks(now):
    """(tg, target, node) of real-checked targets whose next check is due on a node; advances
    their schedule."""
    out = []
    with LOCK:
        for (tg_arn, target_id, _), target in TARGETS.items():
            if not is_real(target_id):
                continue
            tg = _target_group(tg_arn)
            if tg is None:
                continue
            _evaluate(tg, target, now)  # resets, unused, draining
            if target.draining_until is not None or USAGE.get(tg_arn) is None:
                continue
            for node in target.nodes:
                if node.next_check is not None and node.next_check <= now:
                    node.next_check = max(node.next_check + float(tg.health_check_interval_seconds), now)
                    out.append((tg, target, node))
    return out


def record_real_check(tg, node, passed, reason, description):
    with LOCK:
        _step(tg, node, passed, reason, description)


def _target_group(arn):
    for account in elbv2_models.elbv2_backends.values():
        for backend in account.values():
            tg = backend.target_groups.get(arn)
            if tg is not None:
                return tg
    return None


def health(tg, target_id, port, ec2_backend, now=None, view="api"):
    """(state, reason, description) of one target, or None when it is not registered; `view`
    as `_evaluate` takes it."""
    now = now or time.time()
    with LOCK:
        target = TARGETS.get((tg.arn, target_id, port))
        if target is None:
            return None
        if target.draining_until is not None and target.draining_until <= now:
            del TARGETS[(tg.arn, target_id, port)]
            return None
        if target_id.startswith("i-"):
            instance = ec2_backend.get_instance_by_id(target_id)
            if instance is not None and instance.state == "stopped":
                return "unused", "Target.InvalidState", "Target is in the stopped state"
        return _evaluate(tg, target, now, view)


def targets_of(tg_arn, now=None):
    """(id, port) of every target the group lists: registered, and draining until it is done."""
    now = now or time.time()
    with LOCK:
        keys = [k for k, t in TARGETS.items() if k[0] == tg_arn]
        return [
            (k[1], k[2])
            for k in keys
            if TARGETS[k].draining_until is None or TARGETS[k].draining_until > now
        ]


def _forced(tg_arn, target_id):
    """The next state the target-health control queued for this target, if any."""
    with LOCK:
        queue = FORCED.get((tg_arn, target_id))
        if not queue:
            return None
        entry = queue[0]
        if len(queue) > 1:
            entry[1] -= 1
            if entry[1] <= 0:
                queue.pop(0)
    state = entry[0]
    return state["state"], state.get("reason"), state.get("description")


# --- moto patches -----------------------------------------------------------------------------


def _port(tg, target):
    return int(target.get("Port") or tg.port)


def _register(self, targets):
    now = time.time()
    for target in targets:
        if target["Id"].startswith("i-"):
            instance = self.ec2_backend.get_instance_by_id(target["Id"])
            if instance is not None and instance.state != "running":
                raise TargetNotRunning(instance_id=target["Id"])
        port = _port(self, target)
        key = (self.arn, target["Id"], port)
        with LOCK:
            existing = TARGETS.get(key)
            # Registering a registered target changes nothing; a draining one starts over.
            if existing is None or existing.draining_until is not None:
                TARGETS[key] = Target(now, self.arn, target["Id"], port)
        self.targets[f"{target['Id']}:{port}"] = {"Id": target["Id"], "Port": port}
        self.deregistered_targets.pop(target["Id"], None)
    refresh_usage(now)


def _deregister(self, targets):
    now = time.time()
    delay = float(self.attributes.get("deregistration_delay.timeout_seconds", 300))
    for target in targets:
        if target["Id"].startswith("i-") and self.ec2_backend.get_instance_by_id(target["Id"]) is None:
            raise InvalidTargetError()
        port = _port(self, target)
        key = (self.arn, target["Id"], port)
        with LOCK:
            current = TARGETS.get(key)
            # "If the specified target does not exist, the action returns successfully" (the
            # API reference): a target that is not registered, or already draining, is left
            # as it is.
            if current is None or current.draining_until is not None:
                continue
            current.draining_until = now + delay
        self.targets.pop(f"{target['Id']}:{port}", None)


def _deregister_terminated(self, instance_ids):
    with LOCK:
        for key in [k for k in TARGETS if k[0] == self.arn and k[1] in instance_ids]:
            del TARGETS[key]
    for key in [k for k, t in self.targets.items() if t["Id"] in instance_ids]:
        self.targets.pop(key)


def _describe_target_health(self, target_group_arn, targets):
    tg = self.target_groups.get(target_group_arn)
    if tg is None:
        raise TargetGroupNotFoundError()
    now = time.time()
    asked = (
        [(t["Id"], _port(tg, t)) for t in targets] if targets else targets_of(tg.arn, now)
    )
    out = []
    for target_id, port in asked:
        found = health(tg, target_id, port, self.ec2_backend, now)
        state, reason, description = found or (
            "unused",
            "Target.NotRegistered",
            "Target is not registered to the target group",
        )
        if found and found[0] != "draining":
            state, reason, description = _forced(tg.arn, target_id) or found
        status = elbv2_models.FakeHealthStatus(
            target_id, port, tg.health_check_port, state, reason, description
        )
        out.append(status)
    return out


_stock_create_target_group = elbv2_models.ELBv2Backend.create_target_group


def _create_target_group(self, name, **kwargs):
    # AWS's minimum interval is 5 s; tests use 1-2 s. moto insists on timeout < interval.
    interval = kwargs.get("healthcheck_interval_seconds")
    short = interval is not None and int(interval) < 5
    if short:
        kwargs["healthcheck_interval_seconds"] = 5
        kwargs["healthcheck_timeout_seconds"] = min(int(kwargs.get("healthcheck_timeout_seconds") or 2), 4)
    tg = _stock_create_target_group(self, name, **kwargs)
    if short:
        tg.health_check_interval_seconds = int(interval)
        tg.health_check_timeout_seconds = min(tg.health_check_timeout_seconds, int(interval))
    return tg


_stock_create_rule = elbv2_models.ELBv2Backend.create_rule
_stock_set_rule_priorities = elbv2_models.ELBv2Backend.set_rule_priorities
_stock_describe_tags = elbv2_models.ELBv2Backend.describe_tags
RULES_PER_LOAD_BALANCER = 100  # the quota "rules per Application Load Balancer", default rules not counted
CONDITION_VALUES_PER_RULE = 5  # the quota "condition values per rule"
_stock_modify_rule = elbv2_models.ELBv2Backend.modify_rule
_CONFIGS = ("HostHeaderConfig", "HttpHeaderConfig", "PathPatternConfig", "SourceIpConfig",
            "HttpRequestMethodConfig", "QueryStringConfig")


def _check_condition_values(conditions):
    """A rule's conditions hold at most CONDITION_VALUES_PER_RULE values together."""
    total = 0
    for c in conditions or []:
        n = len(c.get("Values") or [])
        for key in _CONFIGS:
            n = max(n, len((c.get(key) or {}).get("Values") or []))
        total += n
    if total > CONDITION_VALUES_PER_RULE:
        raise ValidationError(
            f"A rule can only have '{CONDITION_VALUES_PER_RULE}' condition values"
        )


def _check_priority(priority):
    if not 1 <= int(priority) <= 50000:
        raise ValidationError(f"Priority '{priority}' must be between 1 and 50000")


def _create_rule(self, listener_arn, conditions, priority, actions, tags=None):
    _check_priority(priority)
    _check_condition_values(conditions)
    listeners = self.describe_listeners(None, [listener_arn])
    lb = listeners and self.load_balancers.get(listeners[0].load_balancer_arn)
    if lb and sum(len(l._non_default_rules) for l in lb.listeners.values()) >= RULES_PER_LOAD_BALANCER:
        raise ELBClientError("TooManyRules", "The maximum number of rules for the load balancer has been reached")
    return _stock_create_rule(self, listener_arn, conditions, priority, actions, tags)


def _modify_rule(self, rule_arn, conditions, actions):
    _check_condition_values(conditions)
    return _stock_modify_rule(self, rule_arn, conditions, actions)


def _set_rule_priorities(self, rule_priorities):
    for rp in rule_priorities:
        _check_priority(rp["Priority"])
    return _stock_set_rule_priorities(self, rule_priorities)


def _describe_tags(self, resource_arns):
    if len(resource_arns) > 20:
        raise ValidationError("You can specify up to 20 resource ARNs in a single DescribeTags call")
    return _stock_describe_tags(self, resource_arns)


elbv2_models.ELBv2Backend.create_rule = _create_rule
elbv2_models.ELBv2Backend.modify_rule = _modify_rule
elbv2_models.ELBv2Backend.set_rule_priorities = _set_rule_priorities
elbv2_models.ELBv2Backend.describe_tags = _describe_tags
elbv2_models.FakeTargetGroup.register = _register
elbv2_models.FakeTargetGroup.deregister = _deregister
elbv2_models.FakeTargetGroup.deregister_terminated_instances = _deregister_terminated
elbv2_models.ELBv2Backend.describe_target_health = _describe_target_health
elbv2_models.ELBv2Backend.create_target_group = _create_target_group

# ELB actions after which the set of used target groups may have changed.
USAGE_ACTIONS = {
    "CreateListener",
    "ModifyListener",
    "DeleteListener",
    "CreateRule",
    "ModifyRule",
    "DeleteRule",
    "DeleteLoadBalancer",
}


# --- containers, as the SSM model starts them ---------------------------------------------------

_PORT = re.compile(r"-p\s+(\d+):(\d+)")
_DIGEST = re.compile(r"bgcloud\.digest=(sha256:[0-9a-f]{64})")
_NAME = re.compile(r"--name\s+'?([A-Za-z0-9_.-]+)")
_INSPECT = re.compile(r"^for c in ((?:'?[A-Za-z0-9_.-]+'? ?)+); do$", re.M)


def launched(instance_id, script, now=None):
    """A launch script ran on the instance: the container it starts is there from now on."""
    port = _PORT.search(script)
    if not port:
        return
    digest = _DIGEST.search(script)
    behaviour = IMAGES.get(digest.group(1), DEFAULT_BEHAVIOUR) if digest else DEFAULT_BEHAVIOUR
    name = _NAME.search(script)
    with LOCK:
        CONTAINERS.setdefault((instance_id, int(port.group(1))), []).append(
            (now or time.time(), behaviour, name and name.group(1), digest and digest.group(1))
        )


_STOP = re.compile(r"^# bgcloud: stop ([A-Za-z0-9_.-]+) on this instance", re.M)


def stopped(instance_id, script, now=None):
    """bgcloud's stop script (script.rs `stop`) ran: the container it names, when there, is
    stopped and kept (`docker stop`): it answers nothing, and the inspect script reads it
    `exited` with its digest label, until a launch starts a container again."""
    name = _STOP.search(script)
    if not name:
        return
    with LOCK:
        for (i, _), entries in CONTAINERS.items():
            if i == instance_id and entries and entries[-1][2] == name.group(1):
                _, _, n, digest = entries[-1]
                entries.append((now or time.time(), {"down": True, "stopped": True}, n, digest))


def inspect(instance_id, script, now=None):
    """What bgcloud's inspect script (script.rs `inspect`) prints on the instance: for each
    container it asks about, `NAME STATUS DIGEST` when a launch started it and it is still the
    one on its port, else `NAME missing`. A container whose behaviour is "down" reads exited."""
    asked = _INSPECT.search(script)
    if not asked:
        return None
    now = now or time.time()
    lines = []
    with LOCK:
        latest = {port: entries[-1] for (i, port), entries in CONTAINERS.items()
                  if i == instance_id and entries}
        for name in asked.group(1).replace("'", "").split():
            found = [(port, e) for port, e in latest.items() if e[2] == name]
            if not found:
                lines.append(f"{name} missing")
                continue
            port, (_, _, _, digest) = found[0]
            status = "exited" if behaviour_at(instance_id, port, now).get("down") else "running"
            lines.append(f"{name} {status} {digest or '<no value>'}")
    return "\n".join(lines) + "\n"


# --- controls -----------------------------------------------------------------------------------


def control(path, data):
    """Handles /_bgcloud/<path> for this model; returns False when the path is not its own."""
    now = time.time()
    with LOCK:
        if path == "target-health":
            key = (data["target_group_arn"], data["target_id"])
            states = [[s, int(s.get("times", 1))] for s in data.get("states", [])]
            if states:
                FORCED[key] = states
            else:
                FORCED.pop(key, None)
        elif path == "image-behaviour":
            IMAGES[data["digest"]] = data["behaviour"]
        elif path == "container":
            # A container no launch started (no name, no digest): bgcloud's inspect sees none.
            CONTAINERS.setdefault((data["instance_id"], int(data["port"])), []).append(
                (now, data["behaviour"], None, None)
            )
        elif path == "settle":
            # The stack has been up for a while: every target of the group has its verdict.
            for key, target in TARGETS.items():
                if key[0] == data["target_group_arn"] and target.draining_until is None:
                    target.registered_at = now - 3600
            if USAGE.get(data["target_group_arn"]) is not None:
                USAGE[data["target_group_arn"]] = now - 3600
        else:
            return False
    return True


def reset():
    with LOCK:
        CONTAINERS.clear()
        IMAGES.clear()
        FORCED.clear()


_stock_describe_account_limits = elbv2_responses.ELBV2Response.describe_account_limits


def _describe_account_limits(self):
    result = _stock_describe_account_limits(self)
    limits = result.result["Limits"]
    for item in limits:
        if item["Name"] == "rules-per-application-load-balancer":
            item["Max"] = RULES_PER_LOAD_BALANCER
    limits.append({"Name": "condition-values-per-alb-rule", "Max": CONDITION_VALUES_PER_RULE})
    return result


elbv2_responses.ELBV2Response.describe_account_limits = _describe_account_limits


# --- listener and rule changes take time --------------------------------------------------------
#
# "Listener and rule changes take effect after a short, unpublished delay; Describe* right after
# a write may still show the old state" (the ELB guide: rule updates do not take effect
# immediately, requests may be routed by the previous configuration for a short time). Two
# delays, both timing.py settings:
#   elb_propagation  the data plane (lane_alb.py) routes by a listener's previous rules and
#                    default actions until this long after a write (`data_plane`);
#   elb_describe_lag DescribeListeners and DescribeRules answer with the state before a write
#                    until this long after it (a rule created meanwhile is not listed yet).

_PROPAGATION = {}  # listener arn -> [(effective at, state)], oldest first
_STALE = {}  # listener arn -> (until, state before the latest write)
_READING = threading.local()


class _State:
    """A listener's routing state at one moment: its default actions and non-default rules, as
    they were (rules copied: moto changes their attributes in place)."""

    def __init__(self, listener):
        self.default_actions = list(listener.default_actions)
        self.rules = OrderedDict(
            (arn, copy.copy(rule)) for arn, rule in listener._non_default_rules.items()
        )

    def view(self, listener):
        """`listener` as this state has it (a copy: moto's own objects are never touched)."""
        shown = copy.copy(listener)
        shown.default_actions = self.default_actions
        shown._non_default_rules = OrderedDict(self.rules)
        return shown


def _listener_of_rule(backend, rule_arn):
    for lb in backend.load_balancers.values():
        for listener in lb.listeners.values():
            if rule_arn in listener._non_default_rules:
                return listener
    return None


def _changing(backend, listeners, write):
    """Runs `write`, remembering each listener's state before and after it with the times the
    data plane and Describe* take them up."""
    now = time.time()
    with LOCK:
        before = {l.arn: _State(l) for l in listeners if l is not None}
        result = write()
        for arn, state in before.items():
            listener = next((l for l in listeners if l is not None and l.arn == arn), None)
            history = _PROPAGATION.setdefault(arn, [(0.0, state)])
            history.append((now + timing.get("elb_propagation"), _State(listener)))
            del history[:-8]  # old states no longer matter
            lag = timing.get("elb_describe_lag")
            if lag > 0:
                _STALE[arn] = (now + lag, state)
    return result


def data_plane(listener, now=None):
    """`listener` as the load balancer's nodes route by it now: its latest state that has had
    `elb_propagation` to take effect."""
    now = now or time.time()
    with LOCK:
        history = _PROPAGATION.get(listener.arn)
        if not history:
            return listener
        due = [state for at, state in history if at <= now]
        return (due[-1] if due else history[0][1]).view(listener)


def _stale(listener):
    """`listener` as Describe* shows it now (the state before a write, within the lag)."""
    entry = _STALE.get(listener.arn)
    if entry is None or entry[0] <= time.time():
        return listener
    return entry[1].view(listener)


_stock_modify_listener = elbv2_models.ELBv2Backend.modify_listener
_stock_modify_rule_p = elbv2_models.ELBv2Backend.modify_rule
_stock_create_rule_p = elbv2_models.ELBv2Backend.create_rule
_stock_set_rule_priorities_p = elbv2_models.ELBv2Backend.set_rule_priorities
_stock_delete_rule = elbv2_models.ELBv2Backend.delete_rule
_stock_describe_rules = elbv2_models.ELBv2Backend.describe_rules


def _listener(backend, arn):
    for lb in backend.load_balancers.values():
        if arn in lb.listeners:
            return lb.listeners[arn]
    return None


def _p_modify_listener(self, arn, *args, **kwargs):
    return _changing(self, [_listener(self, arn)],
                     lambda: _stock_modify_listener(self, arn, *args, **kwargs))


def _p_modify_rule(self, rule_arn, *args, **kwargs):
    return _changing(self, [_listener_of_rule(self, rule_arn)],
                     lambda: _stock_modify_rule_p(self, rule_arn, *args, **kwargs))


def _p_create_rule(self, listener_arn, *args, **kwargs):
    return _changing(self, [_listener(self, listener_arn)],
                     lambda: _stock_create_rule_p(self, listener_arn, *args, **kwargs))


def _p_set_rule_priorities(self, rule_priorities):
    listeners = {}
    for rp in rule_priorities:
        l = _listener_of_rule(self, rp["RuleArn"])
        if l is not None:
            listeners[l.arn] = l
    return _changing(self, list(listeners.values()),
                     lambda: _stock_set_rule_priorities_p(self, rule_priorities))


def _p_delete_rule(self, arn):
    return _changing(self, [_listener_of_rule(self, arn)], lambda: _stock_delete_rule(self, arn))


def _p_describe_rules(self, listener_arn, rule_arns):
    rules = _stock_describe_rules(self, listener_arn, rule_arns)
    if not getattr(_READING, "stale", False):
        return rules
    # As Describe* shows them: from each listener's state before a recent write.
    shown = []
    for rule in rules:
        if getattr(rule, "is_default", False):
            shown.append(rule)
            continue
        listener = _listener(self, rule.listener_arn)
        view = _stale(listener) if listener is not None else None
        if view is None or view is listener:
            shown.append(rule)
        elif rule.arn in view._non_default_rules:
            shown.append(view._non_default_rules[rule.arn])
    if rule_arns and len(shown) < len(rule_arns):
        raise elbv2_exceptions.RuleNotFoundError("One or more rules not found")
    return shown


def _with_stale_reads(handler):
    def answer(self):
        _READING.stale = True
        try:
            return handler(self)
        finally:
            _READING.stale = False
    return answer


_stock_describe_listeners_response = elbv2_responses.ELBV2Response.describe_listeners


def _describe_listeners_response(self):
    result = _stock_describe_listeners_response(self)
    result.result["Listeners"] = [_stale(l) for l in result.result["Listeners"]]
    return result


elbv2_models.ELBv2Backend.modify_listener = _p_modify_listener
elbv2_models.ELBv2Backend.modify_rule = _p_modify_rule
elbv2_models.ELBv2Backend.create_rule = _p_create_rule
elbv2_models.ELBv2Backend.set_rule_priorities = _p_set_rule_priorities
elbv2_models.ELBv2Backend.delete_rule = _p_delete_rule
elbv2_models.ELBv2Backend.describe_rules = _p_describe_rules
elbv2_responses.ELBV2Response.describe_rules = _with_stale_reads(
    elbv2_responses.ELBV2Response.describe_rules
)
elbv2_responses.ELBV2Response.describe_listeners = _describe_listeners_response
