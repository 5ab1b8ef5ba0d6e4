//! # aws-transfer-exporter
//!
//! Turns AWS Transfer Family CloudWatch log events into Prometheus metrics
//! that say *why* transfers fail, per cause, server and user.
//!
//! Data flows one way; each arrow is a module boundary and no module reaches
//! backwards (`tests/it/layout.rs` checks it from the `use` lines):
//!
//! ```text
//! source (CloudWatch poller | file/stdin)  -> RawEvent {group, stream, id, ts, message}
//!   -> ingest    (the one way in: submit a batch; counted when it returns) [ingest]
//!   -> parse     (pure: message -> Parsed, format detected per event)   [parse]
//!   -> attribute (session-id / stream name -> user; bounded memory)     [attribute]
//!   -> classify  (pure: event -> category, cause, advice; one table)    [classify]
//!   -> count     (one metrics module; bounded labels)                   [metrics]
//!   -> serve     (/metrics, health, landing page)                       [http]
//! ```
//!
//! Beside the flow, used by many and using none of it: [`config`] (raw →
//! checked, one checker, every default in [`config::defaults`]), [`aws`]
//! (one SDK builder, one error map, counted calls, a trait per API),
//! [`state`] (the state store), [`persist`] (what is written when: one
//! consistent snapshot of counters and every source's progress per scrape,
//! acknowledgement and flush), [`app`] (assembles the daemon once from a
//! checked config and a shutdown future; [`reload`] re-reads it on SIGHUP
//! or `POST /-/reload`), [`inventory`] and [`probe`] (what the logs cannot
//! say).
//!
//! [`pipeline::Pipeline`] strings parse → attribute → classify → count
//! together; the `classify` command and the daemon both use it, so what the
//! command prints is exactly what the daemon would count.

pub mod app;
pub mod attribute;
pub mod aws;
pub mod bytes;
pub mod classify;
pub mod cli;
pub mod clock;
pub mod config;
pub mod corpus;
pub mod event;
pub mod http;
pub mod ingest;
pub mod inventory;
pub mod metrics;
pub mod parse;
pub mod persist;
pub mod pipeline;
pub mod probe;
pub mod reload;
pub mod report;
pub mod shutdown;
pub mod source;
pub mod state;
pub mod web;
