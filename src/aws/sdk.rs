//! The one SDK config builder. Every AWS client of the exporter is built
//! here, from one [`SdkConfig`] per target, with one timeout and one retry
//! policy:
//!
//! - **Credentials**: aws-config's default chain (environment, profile and
//!   SSO, web identity, container, instance metadata), or, with a role ARN,
//!   STS AssumeRole using that chain's credentials.
//! - **Timeouts**: [`API_CONNECT_TIMEOUT`] and [`API_ATTEMPT_TIMEOUT`] for
//!   every attempt of every client (the Transfer client used to have none,
//!   so a black-holed endpoint held the inventory for minutes).
//! - **Retries**: the SDK's own retries are **disabled** for every client.
//!   Every attempt goes through [`crate::aws::call`] instead: it takes a
//!   token from the target's shared bucket (the CloudWatch Logs quota is
//!   account-wide, so a retry must wait its turn like any other call), is
//!   counted in `api_calls_total{operation, outcome}` (hidden SDK retries
//!   would make the counters lie about what the account spent), backs off
//!   with jitter under [`crate::aws::RetryPolicy`], and never retries what
//!   waiting cannot fix (credentials, denied, not found).
//!
//! [`logs_client`] and [`transfer_client`] apply the timeouts and retry
//! policy again on the client, so a hand-built [`SdkConfig`] (tests) gets
//! the same behaviour as a loaded one.

use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;

/// Longest a single API attempt may take before it counts as `transient`.
/// FilterLogEvents on a large group answers within seconds; a call hanging
/// longer is better abandoned than allowed to stall the round.
pub const API_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);

/// Connecting to a regional endpoint takes milliseconds; three seconds leaves
/// room for a slow VPC endpoint without waiting on a dead one.
pub const API_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The STS session name of an assumed role: what CloudTrail shows as the
/// caller, so an account owner can tell the exporter's calls apart.
pub const SESSION_NAME: &str = "aws-transfer-exporter";

/// The name a target gets when a client is built from a bare
/// [`SdkConfig`] (tests and tools that have no target).
pub const UNNAMED_TARGET: &str = "default";

/// Timeouts of every attempt of every client.
pub fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(API_CONNECT_TIMEOUT)
        .operation_attempt_timeout(API_ATTEMPT_TIMEOUT)
        .build()
}

/// The SDK's retry policy: none (see the module docs for why).
pub fn retry_config() -> RetryConfig {
    RetryConfig::disabled()
}

/// Where and as whom one target calls AWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AwsTarget<'a> {
    /// The target's name: the `target` label and the health entry.
    pub name: &'a str,
    pub region: &'a str,
    /// Endpoint override (VPC endpoints, tests); every service of the
    /// target uses it.
    pub endpoint_url: Option<&'a str>,
    /// Role to assume with the default chain's credentials.
    pub role_arn: Option<&'a str>,
}

/// An [`SdkConfig`] and the name of the target it belongs to.
#[derive(Debug, Clone)]
pub struct TargetSdk {
    pub target: String,
    pub config: SdkConfig,
}

/// Something clients can be built from: a target's config, or a bare
/// [`SdkConfig`] (named [`UNNAMED_TARGET`]).
pub trait TargetConfig {
    fn target_name(&self) -> &str;
    fn sdk_config(&self) -> &SdkConfig;
}

impl TargetConfig for TargetSdk {
    fn target_name(&self) -> &str {
        &self.target
    }
    fn sdk_config(&self) -> &SdkConfig {
        &self.config
    }
}

impl TargetConfig for SdkConfig {
    fn target_name(&self) -> &str {
        UNNAMED_TARGET
    }
    fn sdk_config(&self) -> &SdkConfig {
        self
    }
}

/// The one place `aws_config` is configured: the default chain, the
/// target's Region and endpoint, the timeouts and retry policy, and its role
/// when one is set.
pub async fn load(t: AwsTarget<'_>) -> TargetSdk {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(t.region.to_owned()))
        .retry_config(retry_config())
        .timeout_config(timeout_config());
    if let Some(url) = t.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let mut config = loader.load().await;
    if let Some(role) = t.role_arn {
        // STS is called with the base config: same chain, Region, endpoint,
        // timeouts; a failure to assume surfaces as a credentials error of
        // the call that needed it (outcome `credentials`).
        let provider = aws_config::sts::AssumeRoleProvider::builder(role)
            .session_name(SESSION_NAME)
            .configure(&config)
            .build()
            .await;
        config = config
            .into_builder()
            .credentials_provider(SharedCredentialsProvider::new(provider))
            .build();
    }
    TargetSdk {
        target: t.name.to_owned(),
        config,
    }
}

/// A CloudWatch Logs client with the exporter's timeouts and retry policy.
pub fn logs_client(sdk: &SdkConfig) -> aws_sdk_cloudwatchlogs::Client {
    let conf = aws_sdk_cloudwatchlogs::config::Builder::from(sdk)
        .retry_config(retry_config())
        .timeout_config(timeout_config())
        .build();
    aws_sdk_cloudwatchlogs::Client::from_conf(conf)
}

/// A Transfer client with the exporter's timeouts and retry policy.
pub fn transfer_client(sdk: &SdkConfig) -> aws_sdk_transfer::Client {
    let conf = aws_sdk_transfer::config::Builder::from(sdk)
        .retry_config(retry_config())
        .timeout_config(timeout_config())
        .build();
    aws_sdk_transfer::Client::from_conf(conf)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `aws_config` is configured in exactly one place: no other file of
    /// `src/` loads a config, assumes a role, or sets SDK timeouts or
    /// retries (so the policy above cannot be bypassed by a new client).
    #[test]
    fn aws_config_is_configured_only_here() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let needles = [
            "aws_config::defaults",
            "aws_config::load_",
            "AssumeRoleProvider",
            ".retry_config(",
            ".timeout_config(",
            "Client::new(",
        ];
        let mut stack = vec![root.clone()];
        let mut offenders = Vec::new();
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                if path.extension().is_none_or(|e| e != "rs") || path.ends_with("aws/sdk.rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                // Only code before the file's unit tests counts.
                let code = text.split("#[cfg(test)]").next().unwrap_or("");
                for n in needles {
                    if code.contains(n) {
                        offenders.push(format!("{}: {n}", path.display()));
                    }
                }
            }
        }
        assert!(offenders.is_empty(), "{offenders:#?}");
    }

    /// Both clients get the same timeouts and the same (disabled) SDK
    /// retries, whatever the config they are built from says.
    #[test]
    fn both_clients_get_the_same_timeouts_and_retry_policy() {
        let loose = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .retry_config(RetryConfig::standard().with_max_attempts(7))
            .build();
        let logs = logs_client(&loose);
        let transfer = transfer_client(&loose);
        let (lc, tc) = (logs.config(), transfer.config());
        for (name, retry, timeouts) in [
            ("logs", lc.retry_config(), lc.timeout_config()),
            ("transfer", tc.retry_config(), tc.timeout_config()),
        ] {
            let retry = retry.expect("retry config set");
            assert_eq!(retry.max_attempts(), 1, "{name}: SDK retries disabled");
            let t = timeouts.expect("timeout config set");
            assert_eq!(t.connect_timeout(), Some(API_CONNECT_TIMEOUT), "{name}");
            assert_eq!(
                t.operation_attempt_timeout(),
                Some(API_ATTEMPT_TIMEOUT),
                "{name}"
            );
        }
    }
}
