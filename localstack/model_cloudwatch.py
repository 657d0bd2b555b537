"""CloudWatch as the gates read it, on top of moto, where moto is kinder than AWS:

- GetMetricData answers percentile statistics (`p99`, `p99.9`, …) from the datapoints put, as
  CloudWatch does (stock moto returns nothing for them);
- datapoints are published late: one put at time t belongs to the period (timing.metric_period)
  t falls in and is invisible to GetMetricData until that period has ended and
  timing.metric_delay has passed (the ALB's one-minute datapoints arrive a minute or two late);
  a period nothing was put in has no datapoint (absent, not zero: moto already does that);
- a query's namespace counts even when it names dimensions (moto ignores it then);
- DescribeAlarms without AlarmTypes answers metric alarms only, as the API reference says;
  with AlarmTypes, the types asked for; PutCompositeAlarm creates a composite alarm (moto lacks
  the action; its alarms carry a rule the way moto's own model has it).
"""

import math
import re
import threading
import time
from datetime import timezone

from moto.cloudwatch import models as cloudwatch_models
from moto.cloudwatch import responses as cloudwatch_responses
from moto.core.responses import EmptyResult

import timing

_PERCENTILE = re.compile(r"^p(\d+(?:\.\d+)?)$")
_stock_statistic = cloudwatch_models.Statistics.get_statistics_for_type


def _statistic(self, stat):
    match = _PERCENTILE.match(stat or "")
    if not match:
        return _stock_statistic(self, stat)
    values = sorted(self.metric_single_values_list)
    if not values:
        return None
    # Nearest rank, as CloudWatch's percentiles of raw values.
    rank = max(1, math.ceil(float(match.group(1)) / 100 * len(values)))
    return values[min(rank, len(values)) - 1]


cloudwatch_models.Statistics.get_statistics_for_type = _statistic


def published(datum, now=None):
    """Whether `datum` is visible yet: its period has ended and the publication delay passed."""
    period = max(timing.get("metric_period"), 0.001)
    at = datum.timestamp
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    start = math.floor(at.timestamp() / period) * period
    return (now or time.time()) >= start + period + timing.get("metric_delay")


_stock_get_all_metrics = cloudwatch_models.CloudWatchBackend.get_all_metrics
_stock_get_metric_data = cloudwatch_models.CloudWatchBackend.get_metric_data


_FILTER = threading.Lock()


def _get_metric_data(self, queries, start_time, end_time, scan_by="TimestampAscending"):
    now = time.time()
    namespaces = {
        q["MetricStat"]["Metric"].get("Namespace")
        for q in queries
        if "MetricStat" in q
    }
    # Only what is published; and moto, given dimensions, would match another namespace's
    # metric of the same name and dimensions.
    with _FILTER:  # the filter is set on the shared backend for the length of one call
        self.get_all_metrics = lambda: [
            md
            for md in _stock_get_all_metrics(self)
            if published(md, now) and (len(namespaces) != 1 or md.namespace in namespaces)
        ]
        try:
            return _stock_get_metric_data(self, queries, start_time, end_time, scan_by)
        finally:
            del self.get_all_metrics


cloudwatch_models.CloudWatchBackend.get_metric_data = _get_metric_data

_stock_describe_alarms = cloudwatch_responses.CloudWatchResponse.describe_alarms


def _describe_alarms(self):
    types = self._get_param("AlarmTypes", []) or ["MetricAlarm"]
    result = _stock_describe_alarms(self)
    body = result.result if hasattr(result, "result") else result
    if "MetricAlarm" not in types:
        body["MetricAlarms"] = []
    if "CompositeAlarm" not in types:
        body["CompositeAlarms"] = []
    return result


def _put_composite_alarm(self):
    self.cloudwatch_backend.put_metric_alarm(
        name=self._get_param("AlarmName"),
        namespace=None,
        metric_name=None,
        comparison_operator=None,
        evaluation_periods=None,
        period=None,
        threshold=None,
        statistic=None,
        description=self._get_param("AlarmDescription"),
        dimensions=[],
        alarm_actions=self._get_param("AlarmActions", []),
        ok_actions=self._get_param("OKActions", []),
        insufficient_data_actions=self._get_param("InsufficientDataActions", []),
        actions_enabled=self._get_bool_param("ActionsEnabled", True),
        rule=self._get_param("AlarmRule"),
        tags=self._get_param("Tags", []),
    )
    return EmptyResult()


cloudwatch_responses.CloudWatchResponse.describe_alarms = _describe_alarms
cloudwatch_responses.CloudWatchResponse.put_composite_alarm = _put_composite_alarm
