//! Every machine-readable error code of the API, with the HTTP status it answers. The one list:
//! the server builds its answers from it, the store and the billing crate refuse with it, and the
//! README's error table is checked against it (a test fails when they disagree).
//!
//! A license's validation code (`SUSPENDED`, `EXPIRED`, ...) answered when an operation is
//! refused for the license's state is not here: it is a [`ValidationCode`](crate::ValidationCode).
use serde::Serialize;

macro_rules! error_codes {
    ($($status:literal => [$($variant:ident = $text:literal,)+],)+) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum ErrorCode {
            $($($variant,)+)+
        }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$($(ErrorCode::$variant,)+)+];

            /// The HTTP status every answer with this code has.
            pub const fn status(self) -> u16 {
                match self {
                    $($(ErrorCode::$variant => $status,)+)+
                }
            }

            pub const fn as_str(self) -> &'static str {
                match self {
                    $($(ErrorCode::$variant => $text,)+)+
                }
            }
        }
    };
}

error_codes! {
    400 => [
        MalformedJson = "MALFORMED_JSON",
        InvalidBody = "INVALID_BODY",
        InvalidQuery = "INVALID_QUERY",
        BadBody = "BAD_BODY",
        BadRequest = "BAD_REQUEST",
        InvalidIdempotencyKey = "INVALID_IDEMPOTENCY_KEY",
        MalformedPayload = "MALFORMED_PAYLOAD",
    ],
    401 => [
        MissingCredentials = "MISSING_CREDENTIALS",
        MalformedCredentials = "MALFORMED_CREDENTIALS",
        InvalidApiKey = "INVALID_API_KEY",
        InvalidRootToken = "INVALID_ROOT_TOKEN",
        SignatureMissing = "SIGNATURE_MISSING",
        SignatureInvalid = "SIGNATURE_INVALID",
        TimestampOutOfTolerance = "TIMESTAMP_OUT_OF_TOLERANCE",
        SecretNotConfigured = "SECRET_NOT_CONFIGURED",
        CertificateNotConfigured = "CERTIFICATE_NOT_CONFIGURED",
        CertificateInvalid = "CERTIFICATE_INVALID",
        InvalidMetricsToken = "INVALID_METRICS_TOKEN",
    ],
    403 => [
        OperatorDisabled = "OPERATOR_DISABLED",
    ],
    404 => [
        NotFound = "NOT_FOUND",
        RouteNotFound = "ROUTE_NOT_FOUND",
        UnknownAction = "UNKNOWN_ACTION",
        IntegrationNotFound = "INTEGRATION_NOT_FOUND",
        KeygenNotConfigured = "KEYGEN_NOT_CONFIGURED",
    ],
    405 => [
        MethodNotAllowed = "METHOD_NOT_ALLOWED",
    ],
    408 => [
        RequestTimeout = "REQUEST_TIMEOUT",
    ],
    409 => [
        EndpointDisabled = "ENDPOINT_DISABLED",
        ProductCodeTaken = "PRODUCT_CODE_TAKEN",
        KeyTaken = "KEY_TAKEN",
        ExternalIdTaken = "EXTERNAL_ID_TAKEN",
        ProductInUse = "PRODUCT_IN_USE",
        LicenseRevoked = "LICENSE_REVOKED",
        LastApiKey = "LAST_API_KEY",
        TooManyActivations = "TOO_MANY_ACTIVATIONS",
        NoSeatAvailable = "NO_SEAT_AVAILABLE",
        QuotaExceeded = "QUOTA_EXCEEDED",
        FeatureMissing = "FEATURE_MISSING",
        EventIgnored = "EVENT_IGNORED",
        IdempotencyInProgress = "IDEMPOTENCY_IN_PROGRESS",
    ],
    413 => [
        PayloadTooLarge = "PAYLOAD_TOO_LARGE",
    ],
    415 => [
        UnsupportedMediaType = "UNSUPPORTED_MEDIA_TYPE",
    ],
    422 => [
        InvalidUrl = "INVALID_URL",
        PrivateAddress = "PRIVATE_ADDRESS",
        InvalidField = "INVALID_FIELD",
        InvalidFilter = "INVALID_FILTER",
        ImmutableField = "IMMUTABLE_FIELD",
        ProductNotFound = "PRODUCT_NOT_FOUND",
        PolicyNotFound = "POLICY_NOT_FOUND",
        CustomerNotFound = "CUSTOMER_NOT_FOUND",
        PolicyNotRenewable = "POLICY_NOT_RENEWABLE",
        LicensePerpetual = "LICENSE_PERPETUAL",
        NotFloating = "NOT_FLOATING",
        NotMetered = "NOT_METERED",
        SecretInOptions = "SECRET_IN_OPTIONS",
        UnknownProvider = "UNKNOWN_PROVIDER",
        IdempotencyKeyReused = "IDEMPOTENCY_KEY_REUSED",
        SecretInvalid = "SECRET_INVALID",
        OptionNotConfigured = "OPTION_NOT_CONFIGURED",
        OptionInvalid = "OPTION_INVALID",
        UnknownApiCredential = "UNKNOWN_API_CREDENTIAL",
        NoMapping = "NO_MAPPING",
    ],
    429 => [
        RateLimited = "RATE_LIMITED",
    ],
    500 => [
        Internal = "INTERNAL",
        SigningKeyUnavailable = "SIGNING_KEY_UNAVAILABLE",
    ],
    503 => [
        Unavailable = "UNAVAILABLE",
        DatabaseUnavailable = "DATABASE_UNAVAILABLE",
    ],
}

impl ErrorCode {
    /// The code whose text is `text`, if there is one.
    pub fn parse(text: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|c| c.as_str() == text)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// So assertions and comparisons written against the code's text keep working.
impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<ErrorCode> for &str {
    fn eq(&self, other: &ErrorCode) -> bool {
        *self == other.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;
    use std::collections::HashSet;

    #[test]
    fn every_code_is_unique_upper_snake_and_serializes_as_its_text() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            let text = code.as_str();
            assert!(seen.insert(text), "{text} listed twice");
            assert!(
                text.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'),
                "{text} is not UPPER_SNAKE"
            );
            assert_eq!(serde_json::to_value(code).unwrap(), serde_json::json!(text));
            assert_eq!(ErrorCode::parse(text), Some(*code));
            assert!((400..600).contains(&code.status()), "{text}");
        }
        assert_eq!(ErrorCode::parse("NO_SUCH_CODE"), None);
    }
}
