//! The one pagination helper: follow `nextToken` until the service says the
//! listing is complete, with two backstops every listing needs — a page
//! limit against a service that never stops, and a stop when the same token
//! comes back (which would otherwise loop forever on one page).
//!
//! Used by DescribeLogGroups (discovery), ListServers and ListUsers
//! (inventory). FilterLogEvents keeps its own loop in the poller: its pages
//! are admitted and counted one by one under the checkpoint's lock, and a
//! runaway window must fail the poll (so the checkpoint stays) rather than
//! end the listing early.

use std::future::Future;

/// Why a listing ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The last page had no token: everything was listed.
    Complete,
    /// `max_pages` pages were followed and there was still a token.
    PageLimit,
    /// A page returned the token that fetched it.
    RepeatedToken,
}

/// Calls `fetch(token)` from no token on, hands each page's items to
/// `each`, and follows the returned token until there is none (an empty
/// token counts as none). Stops early (and logs a WARN naming `operation`
/// and `what`) on a repeated token or after `max_pages` pages; the first
/// error is returned as is.
pub async fn paginate<T, E, F, Fut>(
    operation: &str,
    what: &str,
    max_pages: usize,
    mut fetch: F,
    mut each: impl FnMut(Vec<T>),
) -> Result<End, E>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, Option<String>), E>>,
{
    let mut token: Option<String> = None;
    for _ in 0..max_pages {
        let (items, next) = fetch(token.clone()).await?;
        each(items);
        match next.filter(|t| !t.is_empty()) {
            None => return Ok(End::Complete),
            Some(t) if Some(&t) == token.as_ref() => {
                tracing::warn!(
                    operation,
                    what,
                    "{operation} returned the same token twice; listing stopped"
                );
                return Ok(End::RepeatedToken);
            }
            Some(t) => token = Some(t),
        }
    }
    tracing::warn!(
        operation,
        what,
        pages = max_pages,
        "{operation} kept returning a token; listing stopped"
    );
    Ok(End::PageLimit)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pages from a script: each entry is (items, next token).
    async fn run(
        script: &[(&[u32], Option<&str>)],
        max_pages: usize,
    ) -> (End, Vec<u32>, Vec<Option<String>>) {
        let mut asked = Vec::new();
        let mut got = Vec::new();
        let mut i = 0;
        let end = paginate::<u32, (), _, _>(
            "Op",
            "test",
            max_pages,
            |tok| {
                asked.push(tok);
                let (items, next) = script[i.min(script.len() - 1)];
                i += 1;
                async move { Ok((items.to_vec(), next.map(str::to_owned))) }
            },
            |items| got.extend(items),
        )
        .await
        .unwrap();
        (end, got, asked)
    }

    #[tokio::test]
    async fn follows_tokens_and_stops_where_it_must() {
        let (end, got, asked) =
            run(&[(&[1, 2], Some("a")), (&[], Some("b")), (&[3], None)], 10).await;
        assert_eq!(end, End::Complete);
        assert_eq!(got, [1, 2, 3]);
        assert_eq!(asked, [None, Some("a".into()), Some("b".into())]);

        let (end, got, _) = run(&[(&[1], Some(""))], 10).await;
        assert_eq!((end, got), (End::Complete, vec![1]), "empty token = end");

        let (end, got, asked) = run(&[(&[1], Some("a")), (&[2], Some("a"))], 10).await;
        assert_eq!((end, got, asked.len()), (End::RepeatedToken, vec![1, 2], 2));

        let (end, got, asked) = run(
            &[(&[1], Some("a")), (&[2], Some("b")), (&[3], Some("c"))],
            2,
        )
        .await;
        assert_eq!((end, got, asked.len()), (End::PageLimit, vec![1, 2], 2));
    }

    #[tokio::test]
    async fn the_first_error_ends_the_listing() {
        let mut calls = 0;
        let r = paginate::<u32, &str, _, _>(
            "Op",
            "test",
            10,
            |tok| {
                calls += 1;
                async move {
                    match tok {
                        None => Ok((vec![1], Some("a".to_owned()))),
                        Some(_) => Err("boom"),
                    }
                }
            },
            |_| {},
        )
        .await;
        assert_eq!(r, Err("boom"));
        assert_eq!(calls, 2);
    }
}
