//! The integration-test binary: one binary, modules by topic. Every test
//! talks to real servers on 127.0.0.1 (moto's CloudWatch Logs API, our
//! daemon binary, promtool) and cleans up its processes. Prepare the
//! environment once with `scripts/test-env.sh`.

mod support;

mod alerts_e2e;
mod aws_credentials;
mod classify_cmd;
mod classify_stream;
mod daemon_config;
mod daemon_e2e;
mod daemon_restart;
mod dashboards_static;
mod demo_script;
mod firehose_push;
mod firehose_replicas;
mod inventory_daemon;
mod inventory_moto;
mod kill_hygiene;
mod labels_attack;
mod landing_page;
mod layout;
mod probe_listeners;
mod reload;
mod source_discovery;
mod source_faults;
mod source_harness;
mod source_outage;
mod source_poll;
mod source_reads;
mod web_edge;
