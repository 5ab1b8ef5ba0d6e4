//! HTTP basic authentication against `basic_auth_users` (bcrypt hashes).
//!
//! - **One bcrypt at a time.** A verification costs tens of milliseconds of
//!   CPU by design (cost 10 ≈ 70 ms); a flood of wrong passwords must not
//!   take every core. Verifications queue on a one-permit semaphore and run
//!   on the blocking pool.
//! - **Unknown users cost the same.** A name that is not configured still
//!   pays one bcrypt computation at the configured cost, so response time
//!   does not tell valid names from invalid ones; the name itself is looked
//!   up by comparing SHA-256 digests in constant time, over every user.
//! - **A small cache of successes**, keyed by a keyed SHA-256 of user,
//!   hash and password (the toolkit caches too): a scraper sending the same
//!   credentials every 15 s pays bcrypt once, not on every scrape. Failures
//!   are not cached, so a wrong password always pays full price.
//! - Nothing about the credentials is ever logged: not the password, not
//!   the hash, not even the user name (people type passwords there).

use std::num::NonZeroUsize;
use std::sync::Mutex;

use base64::Engine as _;
use hyper::header::HeaderValue;
use lru::LruCache;
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};
use tokio::sync::Semaphore;

use super::web_config::{Secret, User};

/// Successful verifications remembered. A deployment has a handful of
/// scrapers, each with one credential; 64 covers them with room to spare and
/// bounds the memory a credential-stuffing client could make us hold (it
/// cannot: only successes enter).
pub const AUTH_CACHE_ENTRIES: usize = 64;

/// The salt of the stand-in computation for unknown users. Its value does
/// not matter (the result is thrown away); only the work does.
const DUMMY_SALT: [u8; 16] = *b"unknown-user-sal";

/// The configured users, ready for constant-time lookup.
#[derive(Debug, Clone, Default)]
pub struct Users {
    entries: Vec<Entry>,
    /// Cost of the stand-in bcrypt for an unknown name: the highest
    /// configured cost, so an unknown name is never the fast answer.
    dummy_cost: u32,
}

#[derive(Debug, Clone)]
struct Entry {
    name_digest: [u8; 32],
    hash: Secret,
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl Users {
    pub fn new(users: &[User]) -> Users {
        Users {
            entries: users
                .iter()
                .map(|u| Entry {
                    name_digest: digest(u.name.as_bytes()),
                    hash: u.hash.clone(),
                })
                .collect(),
            dummy_cost: users
                .iter()
                .map(|u| u.cost)
                .max()
                .unwrap_or(bcrypt::DEFAULT_COST),
        }
    }

    /// No users: authentication is off.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The hash of `name`, looked up without an early exit and with
    /// constant-time comparisons.
    fn find(&self, name: &str) -> Option<&Secret> {
        let d = digest(name.as_bytes());
        let mut found = subtle::Choice::from(0);
        let mut index = 0u32;
        for (i, e) in self.entries.iter().enumerate() {
            let eq = e.name_digest.ct_eq(&d);
            index = u32::conditional_select(&index, &(i as u32), eq);
            found |= eq;
        }
        bool::from(found).then(|| &self.entries[index as usize].hash)
    }
}

/// User and password from an `Authorization: Basic …` header.
pub fn parse_basic(header: &HeaderValue) -> Option<(String, String)> {
    let text = header.to_str().ok()?;
    let (scheme, b64) = text.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_owned(), pass.to_owned()))
}

/// The verifier: the one-at-a-time gate and the cache of successes. One per
/// [`super::Edge`], shared by every listener.
pub struct Authenticator {
    gate: Semaphore,
    cache: Mutex<LruCache<[u8; 32], ()>>,
    /// Per-process key for the cache digests, so the cache never holds a
    /// plain hash of a password.
    cache_key: [u8; 32],
}

impl Default for Authenticator {
    fn default() -> Self {
        Authenticator::new()
    }
}

impl Authenticator {
    pub fn new() -> Authenticator {
        Authenticator {
            gate: Semaphore::new(1),
            cache: Mutex::new(LruCache::new(
                NonZeroUsize::new(AUTH_CACHE_ENTRIES).expect("non-zero"),
            )),
            cache_key: rand::random(),
        }
    }

    fn cache_digest(&self, user: &str, hash: &Secret, pass: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.cache_key);
        for part in [user.as_bytes(), hash.expose().as_bytes(), pass.as_bytes()] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        h.finalize().into()
    }

    /// True when `header` carries the credentials of a configured user.
    /// Callers check [`Users::is_empty`] first (no users: no auth).
    pub async fn check(&self, users: &Users, header: Option<&HeaderValue>) -> bool {
        let Some((user, pass)) = header.and_then(parse_basic) else {
            return false;
        };
        let hash = users.find(&user).cloned();
        if let Some(hash) = &hash {
            let key = self.cache_digest(&user, hash, &pass);
            if self.cache.lock().expect("auth cache").get(&key).is_some() {
                return true;
            }
        }
        let cost = users.dummy_cost;
        let Ok(_permit) = self.gate.acquire().await else {
            return false;
        };
        let verified = {
            let hash = hash.clone();
            let pass = pass.clone();
            tokio::task::spawn_blocking(move || match hash {
                Some(hash) => bcrypt::verify(pass.as_bytes(), hash.expose()).unwrap_or(false),
                None => {
                    // Same work as a verification, result thrown away.
                    let _ = bcrypt::hash_with_salt(pass.as_bytes(), cost, DUMMY_SALT);
                    false
                }
            })
            .await
            .unwrap_or(false)
        };
        if verified {
            if let Some(hash) = &hash {
                let key = self.cache_digest(&user, hash, &pass);
                self.cache.lock().expect("auth cache").put(key, ());
            }
        }
        verified
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, pass: &str) -> HeaderValue {
        let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        HeaderValue::from_str(&format!("Basic {b}")).unwrap()
    }

    fn users() -> Users {
        Users::new(&[
            User {
                name: "alice".into(),
                hash: Secret::new(bcrypt::hash("wonderland", 4).unwrap()),
                cost: 4,
            },
            User {
                name: "bob".into(),
                hash: Secret::new(bcrypt::hash("builder", 5).unwrap()),
                cost: 5,
            },
        ])
    }

    #[test]
    fn parse_basic_cases() {
        let cases: &[(&str, Option<(&str, &str)>)] = &[
            (
                "Basic YWxpY2U6d29uZGVybGFuZA==",
                Some(("alice", "wonderland")),
            ),
            (
                "basic YWxpY2U6d29uZGVybGFuZA==",
                Some(("alice", "wonderland")),
            ),
            // password containing ':' keeps it
            ("Basic YTpiOmM=", Some(("a", "b:c"))),
            ("Bearer YWxpY2U6d29uZGVybGFuZA==", None),
            ("Basic !!!", None),
            ("Basic YWxpY2U=", None), // no colon
            ("Basic", None),
        ];
        for (h, want) in cases {
            let got = parse_basic(&HeaderValue::from_str(h).unwrap());
            let want = want.map(|(u, p)| (u.to_owned(), p.to_owned()));
            assert_eq!(got, want, "header: {h}");
        }
    }

    #[tokio::test]
    async fn verification_cases() {
        let u = users();
        let a = Authenticator::new();
        assert_eq!(u.dummy_cost, 5);
        let cases: &[(Option<(&str, &str)>, bool)] = &[
            (Some(("alice", "wonderland")), true),
            (Some(("alice", "wonderland")), true), // cached
            (Some(("bob", "builder")), true),
            (Some(("alice", "builder")), false),
            (Some(("mallory", "wonderland")), false),
            (Some(("", "")), false),
            (None, false),
        ];
        for (cred, want) in cases {
            let h = cred.map(|(u, p)| basic(u, p));
            assert_eq!(a.check(&u, h.as_ref()).await, *want, "{cred:?}");
        }
        assert_eq!(a.cache.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_changed_hash_does_not_hit_the_old_cache_entry() {
        let a = Authenticator::new();
        assert!(a.check(&users(), Some(&basic("alice", "wonderland"))).await);
        let changed = Users::new(&[User {
            name: "alice".into(),
            hash: Secret::new(bcrypt::hash("new-password", 4).unwrap()),
            cost: 4,
        }]);
        assert!(!a.check(&changed, Some(&basic("alice", "wonderland"))).await);
        assert!(
            a.check(&changed, Some(&basic("alice", "new-password")))
                .await
        );
    }

    /// The README's example, made by `htpasswd -nBC 10` (a `$2y$` hash).
    #[tokio::test]
    async fn an_htpasswd_hash_verifies() {
        let u = Users::new(&[User {
            name: "prometheus".into(),
            hash: Secret::new("$2y$10$FSlUnVQGunLbu5h8d6Bqs.OAR43C.GAg/0h7Ak7IZItvbPWziz0NK"),
            cost: 10,
        }]);
        let a = Authenticator::new();
        assert!(a.check(&u, Some(&basic("prometheus", "change-me"))).await);
        assert!(!a.check(&u, Some(&basic("prometheus", "change-me!"))).await);
    }

    #[test]
    fn find_is_exact() {
        let u = users();
        assert!(u.find("alice").is_some());
        assert!(u.find("bob").is_some());
        assert!(u.find("Alice").is_none());
        assert!(u.find("alic").is_none());
        assert!(Users::default().find("alice").is_none());
    }
}
