//! The CloudWatch Logs API as the source sees it. The trait, its SDK
//! implementation and the error map live in [`crate::aws`]; these
//! re-exports keep the source's paths.

pub use crate::aws::errors::{
    classify as classify_sdk_error, classify_code, classify_status, ApiError, ErrorKind, HttpStatus,
};
pub use crate::aws::logs::{GroupsPage, LogEvent, LogsApi, Page, SdkLogs, OP_DESCRIBE, OP_FILTER};
pub use crate::aws::sdk::{API_ATTEMPT_TIMEOUT, API_CONNECT_TIMEOUT};
pub use crate::aws::BoxFuture;
