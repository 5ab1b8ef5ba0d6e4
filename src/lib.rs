//! # aws-transfer-exporter
//!
//! Turns AWS Transfer Family CloudWatch log events into Prometheus metrics
//! that say *why* transfers fail, per cause, server and user.
//!
//! Data flows one way; each arrow is a module boundary and no module reaches
//! backwards:
//!
//! ```text
//! source (CloudWatch poller | file/stdin)  -> RawEvent {group, stream, id, ts, message}
//!   -> parse     (pure: message -> Parsed, format detected per event)   [parse]
//!   -> attribute (session-id / stream name -> user; bounded memory)     [attribute]
//!   -> classify  (pure: event -> category, cause, advice; one table)    [classify]
//!   -> count     (one metrics module; bounded labels)                   [metrics]
//!   -> serve     (/metrics, health, landing page)                       [http]
//! ```
//!
//! [`pipeline::Pipeline`] strings parse → attribute → classify → count
//! together; the `classify` command and the daemon both use it, so what the
//! command prints is exactly what the daemon would count.

pub mod attribute;
pub mod classify;
pub mod cli;
pub mod config;
pub mod corpus;
pub mod daemon;
pub mod event;
pub mod http;
pub mod inventory;
pub mod metrics;
pub mod parse;
pub mod pipeline;
pub mod probe;
pub mod report;
pub mod shutdown;
pub mod source;
pub mod web;
