"""Amazon EC2 Auto Scaling's instance lifecycle as it meets the load balancer, on top of moto
(whose groups keep every instance registered whatever its state, and terminate at once).

What AWS does and this module makes moto do (Amazon EC2 Auto Scaling User Guide: "Amazon EC2
Auto Scaling instance lifecycle", "Temporarily remove instances from your Auto Scaling group"):
- A group registers in its target groups only the instances that are `InService` (moto
  registered every instance of the group each time its capacity was set, Standby included).
- EnterStandby: the instance reads `Standby` and is deregistered from the group's target groups
  (the ALB model leaves it `draining` for the deregistration delay); it stays EC2 `running`.
  ExitStandby registers it again.
- TerminateInstanceInAutoScalingGroup (and a scale-in): the instance reads `Terminating` and is
  deregistered (draining) while it is still EC2 `running`; the group terminates it once the
  longest deregistration delay of its target groups has passed (connection draining), and only
  then does it leave the group (moto terminated it at once, never `Terminating`).
"""

import threading

from moto.autoscaling import models as asg_models

import model_alb  # noqa: F401 (FakeTargetGroup.deregister leaves targets draining)

_ORIGINAL_TERMINATE = asg_models.AutoScalingBackend.terminate_instance
_ORIGINAL_STANDBY = asg_models.AutoScalingBackend.enter_standby_instances


def _target_groups(backend, group):
    if not group.target_group_arns:
        return []
    return backend.elbv2_backend.describe_target_groups(
        target_group_arns=group.target_group_arns, load_balancer_arn=None, names=None
    )


def _deregister(backend, group, instance_id):
    """Takes the instance out of the group's target groups; the longest drain, in seconds."""
    longest = 0.0
    for tg in _target_groups(backend, group):
        tg.deregister([{"Id": instance_id, "Port": tg.port}])
        delay = float(tg.attributes.get("deregistration_delay.timeout_seconds", 300))
        longest = max(longest, delay)
    return longest


def _update_attached_target_groups(self, group_name):
    group = self.autoscaling_groups[group_name]
    for tg in _target_groups(self, group):
        in_service = [
            {"Id": s.instance.id, "Port": tg.port}
            for s in group.instance_states
            if s.lifecycle_state == "InService"
        ]
        if in_service:
            self.elbv2_backend.register_targets(tg.arn, in_service)


def _enter_standby(self, group_name, instance_ids, should_decrement):
    activities = _ORIGINAL_STANDBY(self, group_name, instance_ids, should_decrement)
    group = self.autoscaling_groups[group_name]
    for instance_id in instance_ids:
        _deregister(self, group, instance_id)
    return activities


def _terminate_instance(self, instance_id, should_decrement):
    state = next(
        s
        for group in self.autoscaling_groups.values()
        for s in group.instance_states
        if s.instance.id == instance_id
    )
    group = state.instance.autoscaling_group
    original = group.desired_capacity
    state.lifecycle_state = "Terminating"
    drain = _deregister(self, group, instance_id)
    # The capacity changes now, as on AWS (a replacement is launched when it is not
    # decremented); the instance itself leaves the group once it has drained.
    group.set_desired_capacity(original - 1 if should_decrement else original)
    activity = asg_models.TerminateInstanceActivity(state.instance, original)

    def terminate():
        # Gone already (a second terminate, the group deleted): nothing left to do.
        if any(s is state for g in self.autoscaling_groups.values() for s in g.instance_states):
            _ORIGINAL_TERMINATE(self, instance_id, False)

    timer = threading.Timer(drain, terminate)
    timer.daemon = True
    timer.start()
    return activity


asg_models.AutoScalingBackend.update_attached_target_groups = _update_attached_target_groups
asg_models.AutoScalingBackend.enter_standby_instances = _enter_standby
asg_models.AutoScalingBackend.terminate_instance = _terminate_instance
