"""CloudFront's AWS-managed response headers policies, which moto lacks: ListResponseHeadersPolicies
and GetResponseHeadersPolicy answer them as CloudFront does (Terraform's
data.aws_cloudfront_response_headers_policy reads them), and a distribution that names a
response headers policy that does not exist is refused with NoSuchResponseHeadersPolicy (404),
where stock moto stores any id."""

import re
from xml.sax.saxutils import escape

from werkzeug.wrappers import Response

_NS = "http://cloudfront.amazonaws.com/doc/2020-05-31/"
_PATH = re.compile(r"^/2020-05-31/response-headers-policy(?:/([^/]+))?(/config)?$")
_DISTRIBUTION = re.compile(r"^/2020-05-31/distribution(?:/[^/]+/config)?$")
_POLICY_ID = re.compile(rb"<ResponseHeadersPolicyId>([^<]*)</ResponseHeadersPolicyId>")

# What CloudFront documents for its managed policies ("Using the managed response headers
# policies"). Only the ones a bgcloud stack might attach; each a (name, comment, config XML).
_MANAGED = {
    "67f7725c-6f97-4210-82d7-5512b31e9d03": (
        "Managed-SecurityHeadersPolicy",
        "Adds a set of security headers to every response",
        "<SecurityHeadersConfig>"
        "<XSSProtection><Override>false</Override><Protection>true</Protection>"
        "<ModeBlock>true</ModeBlock></XSSProtection>"
        "<FrameOptions><Override>false</Override><FrameOption>SAMEORIGIN</FrameOption></FrameOptions>"
        "<ReferrerPolicy><Override>false</Override>"
        "<ReferrerPolicy>strict-origin-when-cross-origin</ReferrerPolicy></ReferrerPolicy>"
        "<ContentTypeOptions><Override>false</Override></ContentTypeOptions>"
        "<StrictTransportSecurity><Override>false</Override><IncludeSubdomains>false</IncludeSubdomains>"
        "<Preload>false</Preload><AccessControlMaxAgeSec>31536000</AccessControlMaxAgeSec>"
        "</StrictTransportSecurity></SecurityHeadersConfig>",
    ),
    "60669652-455b-4ae9-85a4-c4c02393f86c": (
        "Managed-SimpleCORS",
        "Allows all origins for simple CORS requests",
        "<CorsConfig><AccessControlAllowOrigins><Quantity>1</Quantity><Items><Origin>*</Origin>"
        "</Items></AccessControlAllowOrigins><AccessControlAllowHeaders><Quantity>1</Quantity>"
        "<Items><Header>*</Header></Items></AccessControlAllowHeaders><AccessControlAllowMethods>"
        "<Quantity>1</Quantity><Items><Method>ALL</Method></Items></AccessControlAllowMethods>"
        "<AccessControlAllowCredentials>false</AccessControlAllowCredentials>"
        "<OriginOverride>false</OriginOverride></CorsConfig>",
    ),
}
_ETAG = "E23ZP02F085DFQ"  # managed policies never change here


def _policy(policy_id):
    name, comment, config = _MANAGED[policy_id]
    return (
        f"<Id>{policy_id}</Id><LastModifiedTime>2021-11-02T00:00:00Z</LastModifiedTime>"
        f"<ResponseHeadersPolicyConfig><Comment>{escape(comment)}</Comment><Name>{name}</Name>"
        f"{config}</ResponseHeadersPolicyConfig>"
    )


def _xml(body, status=200, etag=None):
    response = Response(f'<?xml version="1.0"?>\n{body}', status=status, mimetype="text/xml")
    if etag:
        response.headers["ETag"] = etag
    return response


def _error(code, message, status):
    return _xml(
        f'<ErrorResponse xmlns="{_NS}"><Error><Type>Sender</Type><Code>{code}</Code>'
        f"<Message>{escape(message)}</Message></Error><RequestId>bgcloud</RequestId></ErrorResponse>",
        status,
    )


def answer(request, body):
    """The response for a CloudFront request this model handles, else None (moto handles it)."""
    match = _PATH.match(request.path)
    if match and request.method == "GET":
        policy_id, config = match.groups()
        if policy_id is None:
            kind = request.args.get("Type", "")
            items = (
                ""
                if kind == "custom"
                else "".join(
                    f"<ResponseHeadersPolicySummary><Type>managed</Type><ResponseHeadersPolicy>"
                    f"{_policy(i)}</ResponseHeadersPolicy></ResponseHeadersPolicySummary>"
                    for i in _MANAGED
                )
            )
            count = 0 if kind == "custom" else len(_MANAGED)
            return _xml(
                f'<ResponseHeadersPolicyList xmlns="{_NS}"><MaxItems>100</MaxItems>'
                f"<Quantity>{count}</Quantity><Items>{items}</Items></ResponseHeadersPolicyList>"
            )
        if policy_id not in _MANAGED:
            return _error("NoSuchResponseHeadersPolicy", "The response headers policy does not exist.", 404)
        if config:
            inner = _policy(policy_id).split("<ResponseHeadersPolicyConfig>", 1)[1]
            return _xml(f'<ResponseHeadersPolicyConfig xmlns="{_NS}">{inner}', etag=_ETAG)
        return _xml(f'<ResponseHeadersPolicy xmlns="{_NS}">{_policy(policy_id)}</ResponseHeadersPolicy>', etag=_ETAG)
    if _DISTRIBUTION.match(request.path) and request.method in ("POST", "PUT"):
        for policy_id in _POLICY_ID.findall(body or b""):
            if policy_id and policy_id.decode() not in _MANAGED:
                return _error(
                    "NoSuchResponseHeadersPolicy",
                    f"The response headers policy {policy_id.decode()} does not exist.",
                    404,
                )
    return None
