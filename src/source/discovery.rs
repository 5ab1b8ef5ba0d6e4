//! Which log groups a target polls: every group whose name starts with one
//! of the configured prefixes (following every DescribeLogGroups page — the
//! first page holds at most 50), plus the explicit names (structured logging
//! can send to any group) and names added at run time (the inventory).

use std::collections::BTreeSet;

use tokio_util::sync::CancellationToken;

use super::cloudwatch::{LogsApi, OP_DESCRIBE};
use super::ratelimit::{CallError, Caller};
use crate::aws::paginate::paginate;

/// Most DescribeLogGroups pages followed for one prefix in one listing: a
/// backstop against a service that keeps returning a token. At 50 groups a
/// page this is 100,000 groups, far beyond a Transfer Family account.
pub const MAX_DESCRIBE_PAGES: usize = 2000;

/// Lists every group under each prefix. Fails (without a partial answer) if
/// any page fails after retries: a partial listing would look like deleted
/// groups and drop them.
pub async fn list_prefixes(
    api: &dyn LogsApi,
    prefixes: &[String],
    calls: &Caller,
    cancel: &CancellationToken,
) -> Result<BTreeSet<String>, CallError> {
    let mut found = BTreeSet::new();
    for prefix in prefixes {
        paginate(
            OP_DESCRIBE,
            prefix,
            MAX_DESCRIBE_PAGES,
            |token| {
                let page = calls.call(OP_DESCRIBE, cancel, move || {
                    api.describe_groups_page(prefix, token.clone())
                });
                async move { page.await.map(|p| (p.names, p.next_token)) }
            },
            // A prefix listing only returns names under the prefix; filter
            // anyway so a permissive endpoint cannot widen what we poll.
            |names| found.extend(names.into_iter().filter(|n| n.starts_with(prefix.as_str()))),
        )
        .await?;
    }
    Ok(found)
}

/// The change between two group sets: (added, removed), both sorted.
pub fn diff(current: &BTreeSet<String>, wanted: &BTreeSet<String>) -> (Vec<String>, Vec<String>) {
    let added = wanted.difference(current).cloned().collect();
    let removed = current.difference(wanted).cloned().collect();
    (added, removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn diff_table() {
        type Names = &'static [&'static str];
        let cases: &[(Names, Names, Names, Names)] = &[
            (&[], &[], &[], &[]),
            (&[], &["a"], &["a"], &[]),
            (&["a"], &[], &[], &["a"]),
            (&["a", "b"], &["b", "c"], &["c"], &["a"]),
            (&["a", "b"], &["a", "b"], &[], &[]),
        ];
        for (cur, want, add, rem) in cases {
            let (a, r) = diff(&set(cur), &set(want));
            assert_eq!(
                a,
                set(add).into_iter().collect::<Vec<_>>(),
                "cur={cur:?} want={want:?}"
            );
            assert_eq!(
                r,
                set(rem).into_iter().collect::<Vec<_>>(),
                "cur={cur:?} want={want:?}"
            );
        }
    }
}
