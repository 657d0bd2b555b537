"""SSM Run Command as real SSM behaves, on top of moto (which runs nothing and says Success).

- Only instances with a registered SSM agent can receive commands: DescribeInstanceInformation
  (not in stock moto) lists running instances as `Online` unless the `ssm-agent` control says
  the agent is missing (`unregistered`) or `ConnectionLost`; stopped instances read
  ConnectionLost. SendCommand naming an instance without a registered agent fails as a whole
  with InvalidInstanceId; an instance whose agent lost its connection gets the command, which
  stays Pending (it is never delivered).
- SendCommand with InstanceIds runs on exactly those instances (stock moto adds every instance
  in the region).
- A launch script that succeeds on an instance starts its container there (alb.launched): the
  ALB model's health checks see the new container from then on, and bgcloud's inspect script
  (`bgcloud sync`) lists it with its digest label (alb.inspect); bgcloud's stop script (`bgcloud
  idle stop`) stops it, kept: inspect reads it `exited` (alb.stopped). On a real-instance lane
  instance (model_lane.py) the script really runs instead.
- An invocation takes time (timing.py): GetCommandInvocation answers InvocationDoesNotExist for
  `ssm_invisible` after SendCommand, then Pending for `ssm_pending`, then InProgress for
  `ssm_running`; the launched container starts when InProgress begins, and the result (Success,
  or an `ssm-invocation` override) shows only after that.
- A launch script's readiness probe (script.rs `readiness`) is judged as the instance would: from
  when the container starts, once a second for the script's ready seconds, against what the
  container on the probe's port answers (the ALB model's behaviour for that instance and port)
  and the matcher the script carries. The launch succeeds at the first passing answer; a
  container that is down fails it at once ("is not running"); no pass in time fails it with the
  script's own last line. Until then the invocation is InProgress, so a deadline can pass while
  it runs. A behaviour with "firewalled" answers the probe (on the instance) but not the ALB.
- CancelCommand (not in stock moto) cancels invocations that have not finished.
- GetCommandInvocation returns at most 24,000 characters of stdout and 8,000 of stderr, as SSM.
- Control `ssm-invocation` overrides one instance's result: {"instance_id", "status",
  "status_details", "stdout", "stderr", "response_code"}; status null clears it.
"""

import json
import re
import threading
import time

from moto.core.responses import ActionResult
from moto.ec2 import models as ec2_models
from moto.ssm import models as ssm_models
from moto.ssm import responses as ssm_responses
from moto.ssm.exceptions import SSMException

import model_alb as alb
import model_lane as lane
import timing

LOCK = threading.Lock()
OVERRIDES = {}  # instance_id -> override dict
AGENTS = {}  # instance_id -> "unregistered" | "ConnectionLost" | "Online"
CANCELLED = set()  # (command_id, instance_id)
OUTPUTS = {}  # (command_id, instance_id) -> stdout of a script the model answers (inspect)
UNDELIVERED = set()  # (command_id, instance_id): sent while the agent's connection was lost
SENT = {}  # (command_id, instance_id) -> when SendCommand reached a modelled instance
PROBES = {}  # (command_id, instance_id) -> the launch script's readiness probe (_probe)
STDOUT_LIMIT = 24000
STDERR_LIMIT = 8000
UNFINISHED = {"Pending", "InProgress", "Delayed"}


class InvalidInstanceId(SSMException):
    def __init__(self, message):
        super().__init__("InvalidInstanceId", message)


class InvocationDoesNotExist(SSMException):
    def __init__(self):
        super().__init__(
            "InvocationDoesNotExist",
            "An error occurred (InvocationDoesNotExist) when calling the GetCommandInvocation "
            "operation",
        )


def _phase(command_id, instance_id, now):
    """Where an invocation on a modelled instance is in time: "invisible", "Pending",
    "InProgress", or None once its result shows."""
    with LOCK:
        sent = SENT.get((command_id, instance_id))
    if sent is None:
        return None
    elapsed = now - sent
    for phase, setting in (
        ("invisible", "ssm_invisible"),
        ("Pending", "ssm_pending"),
        ("InProgress", "ssm_running"),
    ):
        elapsed -= timing.get(setting)
        if elapsed < 0:
            return phase
    return None


def _instances(account_id, region):
    backend = ec2_models.ec2_backends[account_id][region]
    for reservation in backend.all_reservations():
        yield from reservation.instances


def agent_status(instance):
    """Online, ConnectionLost, or None when no agent is registered."""
    with LOCK:
        configured = AGENTS.get(instance.id, "Online")
    if configured == "unregistered":
        return None
    if instance.state != "running":
        return "ConnectionLost"
    return configured


# --- DescribeInstanceInformation ----------------------------------------------------------------


def _describe_instance_information(self):
    wanted = None
    for f in self._get_param("Filters", []) or []:
        if f.get("Key") in ("InstanceIds", "tag:InstanceIds"):
            wanted = set(f.get("Values", []))
    for f in self._get_param("InstanceInformationFilterList", []) or []:
        if f.get("key") == "InstanceIds":
            wanted = set(f.get("valueSet", []))
    items = []
    for instance in _instances(self.current_account, self.region):
        if wanted is not None and instance.id not in wanted:
            continue
        status = agent_status(instance)
        if status is None:
            continue
        items.append(
            {
                "InstanceId": instance.id,
                "PingStatus": status,
                "LastPingDateTime": time.time(),
                "AgentVersion": "3.3.0.0",
                "IsLatestVersion": True,
                "PlatformType": "Linux",
                "PlatformName": "Amazon Linux",
                "ResourceType": "EC2Instance",
                "IPAddress": instance.private_ip,
                "ComputerName": getattr(instance, "private_dns_name", "") or "",
            }
        )
    return json.dumps({"InstanceInformationList": items})


# --- the launch script's readiness probe ---------------------------------------------------------

_READY_SECONDS = re.compile(r"while \[ \$i -lt (\d+) \]; do")
_PROBE_URL = re.compile(r"^url='?(https?://127\.0\.0\.1:(\d+)[^'\s]*)'?$", re.M)
_EXACT = re.compile(r'\[ "\$1" -eq (\d+) \] && return 0')
_RANGE = re.compile(r'\[ "\$1" -ge (\d+) \] && \[ "\$1" -le (\d+) \] && return 0')
_EXPECTS = re.compile(r"the target group expects (\S+) \(waited")


def _probe(script, starts):
    """What the readiness loop of a launch script asks, or None for a script without one."""
    ready, url, name = _READY_SECONDS.search(script), _PROBE_URL.search(script), alb._NAME.search(script)
    if not (ready and url and name):
        return None
    ranges = [(int(c), int(c)) for c in _EXACT.findall(script)]
    ranges += [(int(lo), int(hi)) for lo, hi in _RANGE.findall(script)]
    expects = _EXPECTS.search(script)
    return {
        "starts": starts,
        "seconds": int(ready.group(1)),
        "url": url.group(1),
        "port": int(url.group(2)),
        "name": name.group(1),
        "ranges": ranges,
        "matcher": expects.group(1) if expects else "",
    }


def _probe_result(instance_id, probe, now):
    """The script's result at `now`: None while it still probes, else (status, stdout, stderr)."""
    name, url, seconds = probe["name"], probe["url"], probe["seconds"]
    code = None
    for k in range(seconds):
        t = probe["starts"] + k
        if t > now:
            return None
        with alb.LOCK:
            b = alb.behaviour_at(instance_id, probe["port"], t)
        if b.get("down"):
            return "Failed", "", f"bgcloud: last log lines of {name}:\nbgcloud: {name} is not running: exited (exit code 1)\n"
        if b.get("timeout"):
            continue
        code = int(b.get("status", 200))
        if any(lo <= code <= hi for lo, hi in probe["ranges"]):
            return "Success", f"bgcloud: {name} answers {code} on {url}\n", ""
    if probe["starts"] + seconds > now:
        return None
    if code is None:
        reason = f"no answer on {url} within {seconds} s"
    else:
        reason = f"{url} answered {code}, the target group expects {probe['matcher']} (waited {seconds} s)"
    return "Failed", "", f"bgcloud: last log lines of {name}:\nbgcloud: {name} is not ready: {reason}\n"


# --- SendCommand ---------------------------------------------------------------------------------

_stock_send_command = ssm_models.SimpleSystemManagerBackend.send_command


def _send_command(self, **kwargs):
    ids = kwargs.get("instance_ids") or []
    by_id = {i.id: i for i in _instances(self.account_id, self.region_name)}
    invalid = [i for i in ids if i not in by_id or agent_status(by_id[i]) is None]
    if invalid:
        raise InvalidInstanceId(
            f"Instances {invalid} not in a valid state for account {self.account_id}"
        )
    command = _stock_send_command(self, **kwargs)
    parameters = kwargs.get("parameters") or {}
    script = "\n".join(parameters.get("commands", []))
    timeout = int((parameters.get("executionTimeout") or ["3600"])[0])
    now = time.time()
    # The script starts when the agent has picked it up: Pending is over.
    starts = now + timing.get("ssm_invisible") + timing.get("ssm_pending")
    for instance_id in ids:
        if lane.instance(instance_id) is not None:
            lane.run(command.command_id, instance_id, script, timeout)
            continue
        with LOCK:
            SENT[(command.command_id, instance_id)] = now
        if agent_status(by_id[instance_id]) != "Online":
            with LOCK:
                UNDELIVERED.add((command.command_id, instance_id))
            continue
        with LOCK:
            override = OVERRIDES.get(instance_id)
        if override is None or override.get("status") == "Success":
            alb.launched(instance_id, script, now=starts)
            alb.stopped(instance_id, script, now=starts)
            probe = _probe(script, starts)
            if probe is not None and override is None:
                with LOCK:
                    PROBES[(command.command_id, instance_id)] = probe
            inspected = alb.inspect(instance_id, script)
            if inspected is not None:
                with LOCK:
                    OUTPUTS[(command.command_id, instance_id)] = inspected
    return command


# Stock moto treats "no Targets" as "every instance in the region", so SendCommand with
# InstanceIds lists instances it was never sent to. Real SSM uses only what was asked for.
_stock_targets = ssm_models.Command._get_instance_ids_from_targets


def _instance_ids_from_targets(self):
    return _stock_targets(self) if self.targets else []


# --- GetCommandInvocation / CancelCommand ---------------------------------------------------------

_stock_get_invocation = ssm_models.Command.get_invocation


def _get_invocation(self, instance_id, plugin_name):
    invocation = dict(_stock_get_invocation(self, instance_id, plugin_name))
    phase = _phase(self.command_id, instance_id, time.time())
    if phase == "invisible":
        raise InvocationDoesNotExist()
    with LOCK:
        override = OVERRIDES.get(instance_id)
        cancelled = (self.command_id, instance_id) in CANCELLED
        undelivered = (self.command_id, instance_id) in UNDELIVERED
        output = OUTPUTS.get((self.command_id, instance_id))
        probe = PROBES.get((self.command_id, instance_id))
    ran = lane.result(self.command_id, instance_id)
    if ran is None and probe is not None and phase is None and not cancelled:
        judged = _probe_result(instance_id, probe, time.time())
        if judged is None:
            phase = "InProgress"  # still probing
        else:
            status, stdout, stderr = judged
            invocation.update(
                {"Status": status, "StatusDetails": status,
                 "ResponseCode": 0 if status == "Success" else 1,
                 "StandardOutputContent": stdout, "StandardErrorContent": stderr}
            )
    if ran is not None:
        invocation.update(ran)
    elif output is not None and not undelivered and not override:
        invocation["StandardOutputContent"] = output
    elif undelivered:
        invocation.update(
            {"Status": "Pending", "StatusDetails": "Pending", "ResponseCode": -1,
             "StandardOutputContent": "", "StandardErrorContent": ""}
        )
    elif override:
        status = override["status"]
        invocation.update(
            {
                "Status": status,
                "StatusDetails": override.get("status_details", status),
                "ResponseCode": override.get("response_code", 0 if status == "Success" else 1),
                "StandardOutputContent": override.get("stdout", ""),
                "StandardErrorContent": override.get("stderr", ""),
            }
        )
    if phase is not None and ran is None and not undelivered:
        # Still on its way: whatever it will end as does not show yet.
        invocation.update(
            {"Status": phase, "StatusDetails": phase, "ResponseCode": -1,
             "StandardOutputContent": "", "StandardErrorContent": ""}
        )
    if cancelled and invocation["Status"] in UNFINISHED:
        invocation.update({"Status": "Cancelled", "StatusDetails": "Cancelled"})
    invocation["StandardOutputContent"] = invocation.get("StandardOutputContent", "")[:STDOUT_LIMIT]
    invocation["StandardErrorContent"] = invocation.get("StandardErrorContent", "")[:STDERR_LIMIT]
    return invocation


def _cancel_command(self):
    command_id = self._get_param("CommandId")
    instance_ids = self._get_param("InstanceIds", []) or []
    command = self.ssm_backend.get_command_by_id(command_id)
    with LOCK:
        for instance_id in instance_ids or command.instance_ids:
            CANCELLED.add((command_id, instance_id))
    for instance_id in instance_ids or command.instance_ids:
        lane.cancel(command_id, instance_id)
    return ActionResult({})


# --- wiring ---------------------------------------------------------------------------------------

ssm_models.SimpleSystemManagerBackend.send_command = _send_command
ssm_models.Command._get_instance_ids_from_targets = _instance_ids_from_targets
ssm_models.Command.get_invocation = _get_invocation
ssm_responses.SimpleSystemManagerResponse.describe_instance_information = (
    _describe_instance_information
)
ssm_responses.SimpleSystemManagerResponse.cancel_command = _cancel_command


def control(path, data):
    """Handles /_bgcloud/<path> for this model; returns False when the path is not its own."""
    with LOCK:
        if path == "ssm-invocation":
            if data.get("status"):
                OVERRIDES[data["instance_id"]] = data
            else:
                OVERRIDES.pop(data["instance_id"], None)
        elif path == "ssm-agent":
            AGENTS[data["instance_id"]] = data.get("status", "Online")
        else:
            return False
    return True


def reset():
    with LOCK:
        OVERRIDES.clear()
        AGENTS.clear()
        CANCELLED.clear()
        UNDELIVERED.clear()
        OUTPUTS.clear()
        SENT.clear()
        PROBES.clear()


