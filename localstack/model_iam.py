"""Policies as AWS evaluates them where moto is stricter than AWS (found applying infra/ against
the emulator):

- A statement whose Condition does not hold does not apply. moto turns it into an explicit deny,
  so the module's "Deny unless aws:SecureTransport" statement on its buckets denied everything.
- Requests to S3 count as made over TLS (`aws:SecureTransport` true), as every real client's
  are; the emulator itself speaks plain HTTP.
- A versioned bucket whose objects have delete markers can be emptied and deleted (moto's delete
  marker lacks the `dispose` that bucket deletion calls).
- With IAM enforced (moto's /moto-api/reset-auth), moto asks about most actions on resource
  `*`, not on the ARN the request is about: such a request matches any Resource of a statement.
  What this checks is that every action a caller makes is in its policy; resource scoping is
  checked only for S3, where moto passes the real ARN.
- A REST request without a body (CloudFront's GETs) is signed over an empty payload; moto
  recomputed the signature over its parsed parameters and answered SignatureDoesNotMatch.
- A query-protocol request (ELB, EC2, IAM, STS, CloudWatch: a form-encoded POST) is signed over
  the bytes sent. moto lost them (werkzeug parses the form) and re-encoded its parsed parameters,
  spaces as `+`: a client that encodes them as `%20`, as the AWS SDK for Rust does, got 403
  SignatureDoesNotMatch for any value with a space (seen on a fixed-response rule's message).
  The emulator keeps the bytes (`bgcloud.raw_body` in the WSGI environ) and the check uses them.
"""

from moto.iam import access_control, policy_conditions
from moto.s3 import models as s3_models
from moto.s3 import responses as s3_responses


def _bool(expected, actual):
    expected = expected if isinstance(expected, list) else [expected]
    return str(actual).lower() in [str(e).lower() for e in expected]


# moto knows StringEquals only and lets any other operator hold: a `Bool` condition must be
# evaluated, or `"aws:SecureTransport": "false"` always matches.
policy_conditions.CONDITION_OPERATIONS.setdefault("Bool", _bool)

_stock_statement = access_control.IAMPolicyStatement.is_action_permitted


def _statement_permitted(self, action, resource="*", principal=None, incoming_condition_values=None):
    result = _stock_statement(self, action, resource, principal, incoming_condition_values)
    if (
        result == access_control.PermissionResult.DENIED
        and self._statement.get("Condition")
        and not self._check_conditions(incoming_condition_values)
    ):
        return access_control.PermissionResult.NEUTRAL
    return result


def _bucket_permission(self, action, resource):
    if self.policy is None:
        return access_control.PermissionResult.NEUTRAL
    policy = access_control.IAMPolicy(self.policy.decode())
    return policy.is_action_permitted(
        action, resource, incoming_condition_values={"aws:SecureTransport": "true"}
    )


_stock_matches = access_control.IAMPolicyStatement._check_element_matches


def _element_matches(self, statement_element, value):
    if statement_element == "Resource" and value == "*":
        return True
    return _stock_matches(self, statement_element, value)


# IAM has no s3:HeadBucket or s3:HeadObject: AWS authorizes HEAD with s3:ListBucket and
# s3:GetObject.
s3_responses.ACTION_MAP["BUCKET"]["HEAD"]["DEFAULT"] = "ListBucket"
if "HEAD" in s3_responses.ACTION_MAP.get("KEY", {}):
    s3_responses.ACTION_MAP["KEY"]["HEAD"]["DEFAULT"] = "GetObject"

_stock_aws_request = access_control.IAMRequestBase._create_aws_request


def _aws_request(self):
    request = _stock_aws_request(self)
    if not self._body and self._method in ("GET", "HEAD", "DELETE"):
        request.data = b""
    return request


from moto.core.authorization import ActionAuthenticatorMixin  # noqa: E402

_stock_authorize = ActionAuthenticatorMixin._authenticate_and_authorize_action


def _authorize(self, iam_request_cls, resource="*"):
    request = getattr(self, "normalized_request", None)
    sent = request.environ.get("bgcloud.raw_body") if request is not None else None
    if sent and not self.raw_body:
        self.raw_body = sent
    return _stock_authorize(self, iam_request_cls, resource)


ActionAuthenticatorMixin._authenticate_and_authorize_action = _authorize
access_control.IAMRequestBase._create_aws_request = _aws_request
access_control.IAMPolicyStatement.is_action_permitted = _statement_permitted
access_control.IAMPolicyStatement._check_element_matches = _element_matches
s3_models.FakeBucket.get_permission = _bucket_permission
s3_models.FakeDeleteMarker.dispose = lambda self, garbage=False: None


def control(path, data):
    """`/_bgcloud/iam {"enforce": true|false}`: from now on every request must be signed by an
    identity whose policies allow it (moto's IAM enforcement), or no longer."""
    if path != "iam":
        return False
    from moto import settings
    from moto.core.responses import ActionAuthenticatorMixin

    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0 if data.get("enforce") else float("inf")
    ActionAuthenticatorMixin.request_count = 0
    return True
