//! The error type, the exit code each kind of failure maps to (docs/reference/exit-codes.md), and
//! AWS errors turned into a line or two a person can act on.

use std::fmt::Display;
use std::sync::atomic::{AtomicBool, Ordering};

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// Exit codes: 0 success, 1 operation failed, 2 bad input or refused (nothing changed),
/// 3 another deployment holds the lock, 4 a watch was inconclusive and the rollout paused,
/// 130 interrupted.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The operation failed part-way or AWS said no: exit 1.
    #[error("{0}")]
    Failed(String),
    /// Bad input or a refusal made before anything was changed: exit 2.
    #[error("{0}")]
    Refused(String),
    /// Someone else holds the deployment lock: exit 3.
    #[error("{0}")]
    Locked(String),
    /// A watch ended without a verdict and the rollout is paused where it is: exit 4.
    #[error("{0}")]
    Inconclusive(String),
    /// Ctrl-C or SIGTERM: the lock was released, exit 130.
    #[error(
        "interrupted; the deployment lock was released. Run `bgcloud status` to see what is live"
    )]
    Interrupted,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The kind's name in `--output json` (`{"error": {"kind": …}}`), one per exit code.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Failed(_) => "failed",
            Error::Refused(_) => "refused",
            Error::Locked(_) => "locked",
            Error::Inconclusive(_) => "inconclusive",
            Error::Interrupted => "interrupted",
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Failed(_) => 1,
            Error::Refused(_) => 2,
            Error::Locked(_) => 3,
            Error::Inconclusive(_) => 4,
            Error::Interrupted => 130,
        }
    }

    pub fn failed(msg: impl Display) -> Self {
        Error::Failed(msg.to_string())
    }

    pub fn refused(msg: impl Display) -> Self {
        Error::Refused(msg.to_string())
    }
}

static VERBOSE: AtomicBool = AtomicBool::new(false);

/// With `-v`, AWS errors carry the SDK's whole error chain too.
pub fn set_verbose(verbose: bool) {
    VERBOSE.store(verbose, Ordering::Relaxed);
}

/// What an AWS SDK error says, in a form bgcloud can explain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsFailure {
    /// The IAM action of the failed call, e.g. `s3:GetObject`.
    pub action: String,
    /// The service's error code (`AccessDenied`, `NoSuchBucket`, …), when it sent one.
    pub code: Option<String>,
    pub message: Option<String>,
    /// The HTTP status, when a response came back.
    pub status: Option<u16>,
    /// Why no answer came back (no credentials, refused, no answer in time), in a few words;
    /// None when AWS answered.
    pub cause: Option<String>,
    /// The SDK's full error chain.
    pub chain: String,
}

impl AwsFailure {
    pub fn of<E>(e: &SdkError<E, HttpResponse>) -> AwsFailure
    where
        E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
    {
        let (code, message) = match e {
            SdkError::ServiceError(s) => (
                s.err().code().map(str::to_string),
                s.err().message().map(str::to_string),
            ),
            _ => (None, None),
        };
        let status = e.raw_response().map(|r| r.status().as_u16());
        let chain = DisplayErrorContext(e).to_string();
        let cause = match e {
            _ if status.is_some() => None,
            // No credentials: the request could not be signed (found while building or
            // dispatching it, by SDK version; a credential provider that timed out too). First,
            // as the hint says the same.
            SdkError::ConstructionFailure(_)
            | SdkError::DispatchFailure(_)
            | SdkError::TimeoutError(_)
                if chain.to_ascii_lowercase().contains("credential") =>
            {
                Some("no AWS credentials".into())
            }
            SdkError::TimeoutError(_) => Some("no answer in time".to_string()),
            SdkError::DispatchFailure(d) if d.is_timeout() => Some("no answer in time".into()),
            SdkError::DispatchFailure(_) if chain.contains("TLS handshake failed") => Some(
                format!("the TLS handshake failed ({})", plain(&root_cause(e))),
            ),
            SdkError::DispatchFailure(_) => Some(format!(
                "could not reach the endpoint ({})",
                plain(&root_cause(e))
            )),
            _ => Some(plain(&root_cause(e))),
        };
        AwsFailure {
            action: iam_action(std::any::type_name::<E>()),
            code,
            message,
            status,
            cause,
            chain,
        }
    }

    /// Whether the call may have taken effect although it failed: a 5xx (AWS may fail after
    /// acting) or no answer at all (a timeout, a dropped connection). A throttle or any other
    /// 4xx is refused before anything is done.
    pub fn may_have_applied(&self) -> bool {
        self.status.is_none_or(|s| s >= 500)
    }

    pub fn is_access_denied(&self) -> bool {
        self.code.as_deref().is_some_and(|c| {
            c.contains("AccessDenied") || c == "UnauthorizedOperation" || c == "Forbidden"
        }) || (self.code.is_none() && self.status == Some(403))
    }

    /// The endpoint does not know the call (stock moto answers 500 with an HTML page, others
    /// 501 or a "not implemented" error).
    pub fn is_unimplemented(&self) -> bool {
        let said = |s: &Option<String>| {
            s.as_deref().is_some_and(|m| {
                let m = m.to_ascii_lowercase();
                m.contains("not implemented") || m.contains("not yet implemented")
            })
        };
        matches!(
            self.code.as_deref(),
            Some(
                "NotImplemented"
                    | "NotImplementedException"
                    | "InvalidAction"
                    | "UnknownOperation"
                    | "UnknownOperationException"
            )
        ) || said(&self.code)
            || said(&self.message)
            || (self.code.is_none() && matches!(self.status, Some(500 | 501)))
    }

    /// One or two lines: what failed and what to do.
    pub fn explain(&self, doing: &str) -> String {
        let what = match (&self.code, &self.message) {
            (Some(c), Some(m)) if !m.is_empty() => format!("{c}: {}", m.trim_end_matches('.')),
            (Some(c), _) => c.clone(),
            (None, _) => match (self.status, &self.cause) {
                (Some(s), _) => format!("HTTP {s} from AWS"),
                (None, Some(cause)) => cause.clone(),
                (None, None) => plain(&self.chain),
            },
        };
        let hint = self.hint();
        let mut text = format!("{doing}: {what}");
        if !hint.is_empty() {
            text.push_str(".\n  ");
            text.push_str(&hint);
        }
        if VERBOSE.load(Ordering::Relaxed) {
            text.push_str(&format!("\n  caused by: {}", self.chain));
        }
        text
    }

    fn hint(&self) -> String {
        let chain = self.chain.to_ascii_lowercase();
        if self.code.is_none() && self.status.is_none() {
            if chain.contains("credential") {
                return "no AWS credentials were found: set AWS_PROFILE (run `aws sso login` for \
                        SSO profiles) or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; in GitHub \
                        Actions, assume the CI role with aws-actions/configure-aws-credentials"
                    .into();
            }
            if chain.contains("tls handshake failed") {
                return "the endpoint did not complete a TLS handshake: an http:// endpoint \
                        written as https://, a proxy in the way, or a certificate this machine \
                        does not trust (point AWS_CA_BUNDLE at the CA that signed it)"
                    .into();
            }
            if chain.contains("timeout") || chain.contains("timed out") {
                return "AWS did not answer in time: check the network and retry".into();
            }
            if chain.contains("dispatch") || chain.contains("connect") || chain.contains("dns") {
                return "could not reach the AWS endpoint: check the network, the region, and \
                        --endpoint-url / AWS_ENDPOINT_URL if you set one"
                    .into();
            }
        }
        let code = self.code.as_deref().unwrap_or_default();
        if self.is_access_denied() {
            return format!(
                "the credentials in use may not call {}: add it to the role's policy on this \
                 resource (the IAM reference, docs/reference/iam.md, lists what bgcloud needs)",
                self.action
            );
        }
        match code {
            "NoSuchBucket" => "the bucket does not exist, or not in this account: check the \
                               bucket name in the config"
                .into(),
            "ExpiredToken" | "ExpiredTokenException" | "RequestExpired" => {
                "the credentials have expired: refresh them (`aws sso login`, or re-run the job's \
                 credentials step)"
                    .into()
            }
            "InvalidClientTokenId"
            | "UnrecognizedClientException"
            | "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "AuthFailure" => {
                "AWS does not accept these credentials: check AWS_PROFILE / AWS_ACCESS_KEY_ID and \
                 the secret key"
                    .into()
            }
            c if c.contains("Throttl") || c == "SlowDown" || c == "RequestLimitExceeded" => {
                "AWS throttled the call even after retries: wait a minute and run it again".into()
            }
            _ => String::new(),
        }
    }
}

/// Wraps an AWS SDK error with what bgcloud was doing: the service's code and message, and what
/// to do about it. The SDK's full chain only with `-v`.
pub fn aws<E>(doing: impl Display) -> impl FnOnce(SdkError<E, HttpResponse>) -> Error
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
{
    move |e| Error::Failed(AwsFailure::of(&e).explain(&doing.to_string()))
}

/// An error's text as one short line a person can read: its first line, without a debug dump
/// (anything from the first `{`, `}`, `Some(` or `source:` on), at most 200 characters.
fn plain(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    let cut = [
        line.find('{'),
        line.find('}'),
        line.find("Some("),
        line.find("source:"),
    ]
    .into_iter()
    .flatten()
    .min()
    .unwrap_or(line.len());
    let line = line[..cut].trim_end_matches([' ', ':', '(', ',']);
    let line: String = line.chars().take(200).collect();
    if line.is_empty() {
        "no answer".into()
    } else {
        line
    }
}

/// `s3:GetObject` from the operation error's type name
/// (`aws_sdk_s3::operation::get_object::GetObjectError`), with S3's actions that IAM names
/// differently.
fn iam_action(type_name: &str) -> String {
    let Some(rest) = type_name.split("aws_sdk_").nth(1) else {
        return "the AWS action".into();
    };
    let service = rest.split("::").next().unwrap_or_default();
    let op = rest
        .split("::")
        .find(|p| p.ends_with("Error") && p.len() > 5)
        .map(|p| p.trim_end_matches('>').trim_end_matches("Error"))
        .unwrap_or_default();
    let prefix = match service {
        "elasticloadbalancingv2" => "elasticloadbalancing",
        other => other,
    };
    let action = match (prefix, op) {
        ("s3", "HeadObject") => "GetObject",
        ("s3", "HeadBucket" | "ListObjectsV2" | "ListObjects") => "ListBucket",
        ("s3", "CreateMultipartUpload" | "UploadPart" | "CompleteMultipartUpload") => "PutObject",
        ("s3", "DeleteObjects") => "DeleteObject",
        ("s3", "CopyObject") => "GetObject and s3:PutObject",
        _ => op,
    };
    format!("{prefix}:{action}")
}

/// The innermost error's text ("Connection refused (os error 111)", a certificate problem):
/// what to act on, without the client's layers around it.
pub fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iam_actions_come_from_the_operation() {
        let name = std::any::type_name::<aws_sdk_s3::operation::get_object::GetObjectError>();
        assert_eq!(iam_action(name), "s3:GetObject");
        let name = std::any::type_name::<
            aws_sdk_elasticloadbalancingv2::operation::modify_listener::ModifyListenerError,
        >();
        assert_eq!(iam_action(name), "elasticloadbalancing:ModifyListener");
        let name = std::any::type_name::<aws_sdk_s3::operation::head_bucket::HeadBucketError>();
        assert_eq!(iam_action(name), "s3:ListBucket");
    }

    #[test]
    fn an_explanation_is_short_and_says_what_to_do() {
        let f = AwsFailure {
            action: "s3:GetObject".into(),
            code: Some("NoSuchBucket".into()),
            message: Some("The specified bucket does not exist".into()),
            status: Some(404),
            cause: None,
            chain: "service error: unhandled error (NoSuchBucket): Error { code: … SdkBody … }"
                .into(),
        };
        let text = f.explain("reading s3://nope/bgcloud/shop/record.json");
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(
            text.contains("NoSuchBucket: The specified bucket does not exist"),
            "{text}"
        );
        assert!(!text.contains("SdkBody"), "{text}");

        let denied = AwsFailure {
            code: Some("AccessDenied".into()),
            ..f.clone()
        };
        assert!(denied.explain("x").contains("may not call s3:GetObject"));
    }

    #[test]
    fn a_cause_is_one_plain_line() {
        for (text, line) in [
            (
                "Connection refused (os error 111)",
                "Connection refused (os error 111)",
            ),
            (
                "ConnectorError { kind: Io, source: hyper }",
                "ConnectorError",
            ),
            ("Unknown } })).", "Unknown"),
            ("first\nsecond", "first"),
            ("Some(Credentials)", "no answer"),
        ] {
            assert_eq!(plain(text), line, "{text}");
        }
    }

    #[test]
    fn unimplemented_calls_are_recognised() {
        let stock_moto = AwsFailure {
            action: "ssm:DescribeInstanceInformation".into(),
            code: None,
            message: None,
            status: Some(500),
            cause: None,
            chain: String::new(),
        };
        assert!(stock_moto.is_unimplemented());
        let real_500 = AwsFailure {
            code: Some("InternalServerError".into()),
            ..stock_moto.clone()
        };
        assert!(!real_500.is_unimplemented());
    }
}
