//! The narrow view of the Transfer Family API the inventory needs
//! ([`TransferApi`]: a page of servers, one server, a page of users, one
//! user) and its one SDK implementation ([`SdkTransfer`]). The types are
//! plain data, so the inventory and its tests never see SDK types; SDK
//! errors map through [`super::errors`], the same map as CloudWatch Logs.

use super::errors::ApiError;
use super::logs::token;
use super::BoxFuture;

/// Operation names used as the `operation` label.
pub const OP_LIST_SERVERS: &str = "ListServers";
pub const OP_DESCRIBE_SERVER: &str = "DescribeServer";
pub const OP_LIST_USERS: &str = "ListUsers";
pub const OP_DESCRIBE_USER: &str = "DescribeUser";

/// Page size asked of ListServers / ListUsers (the API maximum).
pub const PAGE_SIZE: i32 = 1000;

/// A server as ListServers gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListedServer {
    pub server_id: String,
    pub arn: String,
    /// ONLINE, OFFLINE, STARTING, STOPPING, …
    pub state: Option<String>,
    pub endpoint_type: Option<String>,
    pub identity_provider_type: Option<String>,
    pub domain: Option<String>,
    pub logging_role: Option<String>,
    pub user_count: Option<i64>,
}

/// One page of ListServers.
#[derive(Debug, Clone, Default)]
pub struct ServersPage {
    pub servers: Vec<ListedServer>,
    pub next_token: Option<String>,
}

/// A server as DescribeServer gives it (what the inventory uses of it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerDetails {
    pub arn: String,
    pub state: Option<String>,
    pub endpoint_type: Option<String>,
    pub identity_provider_type: Option<String>,
    pub domain: Option<String>,
    /// SFTP, FTP, FTPS, AS2, in the API's order.
    pub protocols: Vec<String>,
    pub logging_role: Option<String>,
    /// Log-group ARNs.
    pub structured_log_destinations: Vec<String>,
    /// Elastic IPs of an internet-facing VPC endpoint.
    pub address_allocation_ids: Vec<String>,
    pub user_count: Option<i64>,
}

/// One page of ListUsers: user names.
#[derive(Debug, Clone, Default)]
pub struct UsersPage {
    pub user_names: Vec<String>,
    pub next_token: Option<String>,
}

/// A user as DescribeUser gives it (no key material: only how many keys).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserDetails {
    pub user_name: String,
    pub role: Option<String>,
    pub home_directory: Option<String>,
    pub ssh_public_keys: usize,
}

/// What the inventory needs from the Transfer API, nothing more.
pub trait TransferApi: Send + Sync + 'static {
    /// One page of ListServers.
    fn list_servers_page(
        &self,
        next_token: Option<String>,
    ) -> BoxFuture<'_, Result<ServersPage, ApiError>>;

    /// DescribeServer; `None` when the answer has no server.
    fn describe_server<'a>(
        &'a self,
        server_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<ServerDetails>, ApiError>>;

    /// One page of ListUsers of a server.
    fn list_users_page<'a>(
        &'a self,
        server_id: &'a str,
        next_token: Option<String>,
    ) -> BoxFuture<'a, Result<UsersPage, ApiError>>;

    /// DescribeUser; `None` when the answer has no user.
    fn describe_user<'a>(
        &'a self,
        server_id: &'a str,
        user_name: &'a str,
    ) -> BoxFuture<'a, Result<Option<UserDetails>, ApiError>>;
}

/// The SDK implementation: one Transfer client per target.
#[derive(Clone, Debug)]
pub struct SdkTransfer {
    client: aws_sdk_transfer::Client,
}

impl SdkTransfer {
    /// A client from an SDK config, with the exporter's timeouts and retry
    /// policy applied (see [`super::sdk`]).
    pub fn from_sdk(sdk: &aws_config::SdkConfig) -> SdkTransfer {
        SdkTransfer {
            client: super::sdk::transfer_client(sdk),
        }
    }
}

fn s<T: AsRef<str>>(v: Option<&T>) -> Option<String> {
    v.map(|v| v.as_ref().to_owned())
}

impl TransferApi for SdkTransfer {
    fn list_servers_page(
        &self,
        next_token: Option<String>,
    ) -> BoxFuture<'_, Result<ServersPage, ApiError>> {
        Box::pin(async move {
            let out = self
                .client
                .list_servers()
                .max_results(PAGE_SIZE)
                .set_next_token(next_token)
                .send()
                .await
                .map_err(|e| ApiError::from_sdk(&e))?;
            Ok(ServersPage {
                servers: out
                    .servers()
                    .iter()
                    .filter_map(|l| {
                        Some(ListedServer {
                            server_id: l.server_id()?.to_owned(),
                            arn: l.arn().to_owned(),
                            state: s(l.state()),
                            endpoint_type: s(l.endpoint_type()),
                            identity_provider_type: s(l.identity_provider_type()),
                            domain: s(l.domain()),
                            logging_role: l.logging_role().map(str::to_owned),
                            user_count: l.user_count().map(i64::from),
                        })
                    })
                    .collect(),
                next_token: token(out.next_token()),
            })
        })
    }

    fn describe_server<'a>(
        &'a self,
        server_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<ServerDetails>, ApiError>> {
        Box::pin(async move {
            let out = self
                .client
                .describe_server()
                .server_id(server_id)
                .send()
                .await
                .map_err(|e| ApiError::from_sdk(&e))?;
            Ok(out.server().map(|d| ServerDetails {
                arn: d.arn().to_owned(),
                state: s(d.state()),
                endpoint_type: s(d.endpoint_type()),
                identity_provider_type: s(d.identity_provider_type()),
                domain: s(d.domain()),
                protocols: d
                    .protocols()
                    .iter()
                    .map(|p| p.as_str().to_owned())
                    .collect(),
                logging_role: d.logging_role().map(str::to_owned),
                structured_log_destinations: d.structured_log_destinations().to_vec(),
                address_allocation_ids: d
                    .endpoint_details()
                    .map(|e| e.address_allocation_ids().to_vec())
                    .unwrap_or_default(),
                user_count: d.user_count().map(i64::from),
            }))
        })
    }

    fn list_users_page<'a>(
        &'a self,
        server_id: &'a str,
        next_token: Option<String>,
    ) -> BoxFuture<'a, Result<UsersPage, ApiError>> {
        Box::pin(async move {
            let out = self
                .client
                .list_users()
                .server_id(server_id)
                .max_results(PAGE_SIZE)
                .set_next_token(next_token)
                .send()
                .await
                .map_err(|e| ApiError::from_sdk(&e))?;
            Ok(UsersPage {
                user_names: out
                    .users()
                    .iter()
                    .filter_map(|u| u.user_name().map(str::to_owned))
                    .collect(),
                next_token: token(out.next_token()),
            })
        })
    }

    fn describe_user<'a>(
        &'a self,
        server_id: &'a str,
        user_name: &'a str,
    ) -> BoxFuture<'a, Result<Option<UserDetails>, ApiError>> {
        Box::pin(async move {
            let out = self
                .client
                .describe_user()
                .server_id(server_id)
                .user_name(user_name)
                .send()
                .await
                .map_err(|e| ApiError::from_sdk(&e))?;
            Ok(out.user().map(|u| UserDetails {
                user_name: u.user_name().unwrap_or_default().to_owned(),
                role: u.role().map(str::to_owned),
                home_directory: u.home_directory().map(str::to_owned),
                ssh_public_keys: u.ssh_public_keys().len(),
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::ErrorKind;

    /// The same empty chain as the Logs test, through the Transfer client:
    /// the same kind from the same map.
    #[tokio::test]
    async fn real_client_without_credentials_says_credentials() {
        let api = SdkTransfer::from_sdk(&crate::aws::logs::tests::no_credentials_config());
        let err = api
            .list_servers_page(None)
            .await
            .expect_err("no credentials");
        assert_eq!(err.kind, ErrorKind::Credentials, "{err}");
        assert!(
            err.message
                .contains("no providers in chain provided credentials"),
            "{err}"
        );
        let err = api
            .describe_server("s-1")
            .await
            .expect_err("no credentials");
        assert_eq!(err.kind, ErrorKind::Credentials, "{err}");
    }
}
