//! The narrow view of CloudWatch Logs the poller needs ([`LogsApi`]: one page
//! of events, one page of group names) and its one SDK implementation
//! ([`SdkLogs`]). SDK errors map through [`super::errors`].
//!
//! Benchmarks and tests may implement [`LogsApi`] in process; integration
//! tests use the SDK implementation against moto.

use super::errors::ApiError;
use super::BoxFuture;

/// Operation names used as the `operation` label.
pub const OP_FILTER: &str = "FilterLogEvents";
pub const OP_DESCRIBE: &str = "DescribeLogGroups";

/// One log event as FilterLogEvents returns it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogEvent {
    pub event_id: String,
    pub log_stream: String,
    pub timestamp_ms: i64,
    /// When CloudWatch Logs ingested it (`ingestionTime`), if the API said:
    /// the base of the poller's delay estimate and of its late verdict.
    pub ingestion_time_ms: Option<i64>,
    pub message: String,
}

/// One page of FilterLogEvents. Pages may be empty while `next_token` is set.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub events: Vec<LogEvent>,
    pub next_token: Option<String>,
}

/// One page of DescribeLogGroups: group names and the token for the next.
#[derive(Debug, Clone, Default)]
pub struct GroupsPage {
    pub names: Vec<String>,
    pub next_token: Option<String>,
}

/// What the poller needs from CloudWatch Logs, nothing more.
pub trait LogsApi: Send + Sync + 'static {
    /// One page of FilterLogEvents over `[start_ms, end_ms]` (inclusive).
    fn filter_page<'a>(
        &'a self,
        group: &'a str,
        start_ms: i64,
        end_ms: i64,
        next_token: Option<String>,
        limit: i32,
    ) -> BoxFuture<'a, Result<Page, ApiError>>;

    /// One page of DescribeLogGroups for a name prefix.
    fn describe_groups_page<'a>(
        &'a self,
        prefix: &'a str,
        next_token: Option<String>,
    ) -> BoxFuture<'a, Result<GroupsPage, ApiError>>;
}

/// The SDK implementation: one CloudWatch Logs client per target.
#[derive(Clone, Debug)]
pub struct SdkLogs {
    client: aws_sdk_cloudwatchlogs::Client,
}

impl SdkLogs {
    /// Loads the SDK config of a target (see [`super::sdk::load`]) and
    /// builds its client.
    pub async fn new(region: &str, endpoint_url: Option<&str>, role_arn: Option<&str>) -> SdkLogs {
        let sdk = super::sdk::load(super::sdk::AwsTarget {
            name: super::sdk::UNNAMED_TARGET,
            region,
            endpoint_url,
            role_arn,
        })
        .await;
        SdkLogs::from_sdk(&sdk.config)
    }

    /// A client from an SDK config, with the exporter's timeouts and retry
    /// policy applied.
    pub fn from_sdk(sdk: &aws_config::SdkConfig) -> SdkLogs {
        SdkLogs {
            client: super::sdk::logs_client(sdk),
        }
    }

    /// Wraps an existing client (tests with a hand-built config).
    pub fn from_client(client: aws_sdk_cloudwatchlogs::Client) -> SdkLogs {
        SdkLogs { client }
    }
}

/// `None` for an absent or empty token (some endpoints send `""` at the end).
pub(crate) fn token(t: Option<&str>) -> Option<String> {
    t.filter(|t| !t.is_empty()).map(str::to_owned)
}

impl LogsApi for SdkLogs {
    fn filter_page<'a>(
        &'a self,
        group: &'a str,
        start_ms: i64,
        end_ms: i64,
        next_token: Option<String>,
        limit: i32,
    ) -> BoxFuture<'a, Result<Page, ApiError>> {
        Box::pin(async move {
            let out = self
                .client
                .filter_log_events()
                .log_group_name(group)
                .start_time(start_ms)
                .end_time(end_ms)
                .limit(limit)
                .set_next_token(next_token)
                .send()
                .await
                .map_err(|e| ApiError::from_sdk(&e))?;
            let events = out
                .events()
                .iter()
                .map(|e| LogEvent {
                    event_id: e.event_id().unwrap_or_default().to_owned(),
                    log_stream: e.log_stream_name().unwrap_or_default().to_owned(),
                    timestamp_ms: e.timestamp().unwrap_or_default(),
                    ingestion_time_ms: e.ingestion_time(),
                    message: e.message().unwrap_or_default().to_owned(),
                })
                .collect();
            Ok(Page {
                events,
                next_token: token(out.next_token()),
            })
        })
    }

    fn describe_groups_page<'a>(
        &'a self,
        prefix: &'a str,
        next_token: Option<String>,
    ) -> BoxFuture<'a, Result<GroupsPage, ApiError>> {
        Box::pin(async move {
            let mut req = self.client.describe_log_groups().set_next_token(next_token);
            if !prefix.is_empty() {
                req = req.log_group_name_prefix(prefix);
            }
            let out = req.send().await.map_err(|e| ApiError::from_sdk(&e))?;
            Ok(GroupsPage {
                names: out
                    .log_groups()
                    .iter()
                    .filter_map(|g| g.log_group_name().map(str::to_owned))
                    .collect(),
                next_token: token(out.next_token()),
            })
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::aws::ErrorKind;
    use aws_credential_types::provider::error::CredentialsError;
    use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};

    /// A credentials provider with nothing to give, answering exactly as
    /// aws-config's default chain does when every provider came up empty.
    #[derive(Debug)]
    pub(crate) struct EmptyChain;

    impl ProvideCredentials for EmptyChain {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            future::ProvideCredentials::ready(Err(CredentialsError::not_loaded(
                "no providers in chain provided credentials",
            )))
        }
    }

    /// A config whose credentials never load, at a dead loopback port: the
    /// runtime fails at identity resolution, before any connection.
    pub(crate) fn no_credentials_config() -> aws_config::SdkConfig {
        aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("eu-west-1"))
            .endpoint_url("http://127.0.0.1:1")
            .credentials_provider(SharedCredentialsProvider::new(EmptyChain))
            .build()
    }

    /// The real client and runtime: an empty chain surfaces as `credentials`
    /// with a Display-only message.
    #[tokio::test]
    async fn real_client_without_credentials_says_credentials() {
        let api = SdkLogs::from_sdk(&no_credentials_config());
        let err = api
            .describe_groups_page("/aws/transfer/", None)
            .await
            .expect_err("no credentials");
        assert_eq!(err.kind, ErrorKind::Credentials, "{err}");
        assert!(
            err.message
                .contains("no providers in chain provided credentials"),
            "{err}"
        );
        assert!(!err.message.contains("CredentialsNotLoaded"), "{err}");
        assert_eq!(err.fix(), crate::aws::errors::NO_CREDENTIALS_FIX);
        let err = api
            .filter_page("g", 0, 1, None, 10)
            .await
            .expect_err("no credentials");
        assert_eq!(err.kind, ErrorKind::Credentials, "{err}");
    }
}
