//! The client's errors: one variant per documented failure, each naming the cause and the fix.
//!
//! Messages carry the request path (never the host's user info, never a header), so no key or
//! session token can reach a log or a terminal through them.

use std::time::Duration;

/// What went wrong talking to the Partner Portal API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401 on session creation.
    #[error(
        "the API rejected the organization key or API key (401): check HSPQ_ORG_KEY and HSPQ_API_KEY; \
         an API key is shown only once, so rotate it under Settings → API if it is lost"
    )]
    BadCredentials,
    /// 403 on session creation: this machine is not an allowed origin of the key.
    #[error(
        "this machine's address is not in the API key's allowed origins (403: {detail}): add it under \
         Settings → API → edit key, or run hspq from an allowed address"
    )]
    OriginNotAllowed {
        /// The API's own words.
        detail: String,
    },
    /// 409: the organisation's sessions are all taken.
    #[error(
        "all {max} API sessions of the organisation are in use (409): other hspq runs or scripts hold them; \
         they expire within an hour, or invalidate them under Settings → API → Active Sessions"
    )]
    SessionLimit {
        /// Sessions active, as the API reported.
        active: u64,
        /// The cap.
        max: u64,
    },
    /// 403 with a scope error.
    #[error(
        "the API key lacks the scope {scope} needed for {path} (403): create a key with that scope under \
         Settings → API (customers:read is optional when creating a key)"
    )]
    ScopeMissing {
        /// The missing scope.
        scope: String,
        /// The request path.
        path: String,
    },
    /// Any other 403 (company not accessible, origin lock).
    #[error("access denied for {path} (403): {description}")]
    Forbidden {
        /// The request path.
        path: String,
        /// The API's own words.
        description: String,
    },
    /// 404.
    #[error("not found: {path} (404): {description}")]
    NotFound {
        /// The request path.
        path: String,
        /// The API's own words.
        description: String,
    },
    /// 400.
    #[error("the API refused {path} (400): {description}")]
    BadRequest {
        /// The request path.
        path: String,
        /// The API's words, with the per-field messages.
        description: String,
    },
    /// A fresh session was refused at once: usually a proxy changed this machine's address.
    #[error(
        "the API refused a session it had just created for {path} (401): sessions are locked to the IP \
         that created them, so a proxy or NAT that changes the address breaks them; use a stable address"
    )]
    SessionRejected {
        /// The request path.
        path: String,
    },
    /// Retries ran out.
    #[error("{path}: gave up after {attempts} attempts over {elapsed:?}: {last}; the API may be down, try again later")]
    GaveUp {
        /// The request path.
        path: String,
        /// Attempts made.
        attempts: usize,
        /// Time spent.
        elapsed: Duration,
        /// The last failure.
        last: String,
    },
    /// A status the docs do not describe for this call.
    #[error("{path}: unexpected status {status}: {description}")]
    Status {
        /// The request path.
        path: String,
        /// The status.
        status: u16,
        /// The body's description, if any.
        description: String,
    },
    /// The body is not what the API documents (a field of an unexpected type, say).
    #[error("{path}: the response does not match the documented format at `{field}`: {detail}")]
    Decode {
        /// The request path.
        path: String,
        /// Where in the body, e.g. `results[3].billing[0].billing_value`.
        field: String,
        /// What serde said.
        detail: String,
    },
    /// Settings that cannot work.
    #[error("{0}")]
    Config(String),
}

impl ApiError {
    /// Whether the run cannot go on (as opposed to one item failing).
    pub fn is_fatal(&self) -> bool {
        !matches!(self, ApiError::NotFound { .. } | ApiError::Forbidden { .. })
    }
}
