"""CloudWatch as the gates read it, on top of moto: GetMetricData answers percentile statistics
(`p99`, `p99.9`, …) from the datapoints put, as CloudWatch does; stock moto returns nothing for
them."""

import math
import re

from moto.cloudwatch import models as cloudwatch_models

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
