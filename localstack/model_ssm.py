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
  (`bgcloud sync`) lists it with its digest label (alb.inspect). On a real-instance lane
  instance (model_lane.py) the script really runs instead.
- CancelCommand (not in stock moto) cancels invocations that have not finished.
- GetCommandInvocation returns at most 24,000 characters of stdout and 8,000 of stderr, as SSM.
- Control `ssm-invocation` overrides one instance's result: {"instance_id", "status",
  "status_details", "stdout", "stderr", "response_code"}; status null clears it.
"""

import json
import threading
import time

from moto.core.responses import ActionResult
from moto.ec2 import models as ec2_models
from moto.ssm import models as ssm_models
from moto.ssm import responses as ssm_responses
from moto.ssm.exceptions import SSMException

import model_alb as alb
import model_lane as lane

LOCK = threading.Lock()
OVERRIDES = {}  # instance_id -> override dict
AGENTS = {}  # instance_id -> "unregistered" | "ConnectionLost" | "Online"
CANCELLED = set()  # (command_id, instance_id)
OUTPUTS = {}  # (command_id, instance_id) -> stdout of a script the model answers (inspect)
UNDELIVERED = set()  # (command_id, instance_id): sent while the agent's connection was lost
STDOUT_LIMIT = 24000
STDERR_LIMIT = 8000
UNFINISHED = {"Pending", "InProgress", "Delayed"}


class InvalidInstanceId(SSMException):
    def __init__(self, message):
        super().__init__("InvalidInstanceId", message)


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
    for instance_id in ids:
        if lane.instance(instance_id) is not None:
            lane.run(command.command_id, instance_id, script, timeout)
            continue
        if agent_status(by_id[instance_id]) != "Online":
            with LOCK:
                UNDELIVERED.add((command.command_id, instance_id))
            continue
        with LOCK:
            override = OVERRIDES.get(instance_id)
        if override is None or override.get("status") == "Success":
            alb.launched(instance_id, script)
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
    with LOCK:
        override = OVERRIDES.get(instance_id)
        cancelled = (self.command_id, instance_id) in CANCELLED
        undelivered = (self.command_id, instance_id) in UNDELIVERED
        output = OUTPUTS.get((self.command_id, instance_id))
    ran = lane.result(self.command_id, instance_id)
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


