"""The real-instance lane's control endpoints (/_bgcloud/lane/...): the lane's facts, attaching
instances, publishing images, and starting the ALB and CDN data planes. Sits above the models
it drives (model_lane, lane_alb, lane_cdn), so none of them imports another in a circle."""

import lane_alb
import lane_cdn
import model_lane


def control(path, data):
    """Handles /_bgcloud/lane/<...>; returns the answer, or None when the path is not its own."""
    if not path.startswith("lane/"):
        return None
    if not model_lane.enabled():
        return {"error": "the emulator was not started with --lane"}
    what = path[len("lane/"):]
    if what == "info":
        return model_lane.LANE
    if what == "attach":
        return {"ips": model_lane.attach(data["instance_ids"])}
    if what == "publish":
        return {"digests": model_lane.publish(data["repository"], data["tags"])}
    if what == "alb":
        return {"port": lane_alb.serve(data["listener_arn"], data.get("metrics_period", 60))}
    if what == "alb-log":
        return lane_alb.log(data["listener_arn"], data.get("since", 0))
    if what == "cdn":
        return {"port": lane_cdn.serve(data["distribution_id"])}
    return {"error": f"unknown lane control {what}"}
