//! Stage 1: what the user wrote. The YAML file is read into a tree of
//! values (not into structs), and the flags are laid over that tree at the
//! keys they stand for, so the checker sees one tree and reports every
//! problem of file and flags alike, unknown keys included, in one run.
//!
//! Each flag that sets a config key is declared once, in [`FLAGS`].

use std::collections::HashMap;

use serde_norway::{Mapping, Value};

use super::{ConfigError, Problem};
use crate::cli::ServeArgs;

/// The configuration as written: the YAML document (a mapping, possibly
/// empty) with the flags laid over it.
#[derive(Debug, Clone, Default)]
pub struct RawConfig {
    pub root: Mapping,
}

/// Which config keys were set by a flag, so messages name the flag the user
/// actually typed (`--poll.interval (targets[0].poll_interval)`).
#[derive(Debug, Default)]
pub struct Origins(HashMap<String, &'static str>);

impl Origins {
    /// The key as shown in a message: with its flag when a flag set it. A
    /// list element (`targets[0].log_groups[1]`) takes the flag of its list.
    pub fn key(&self, key: &str) -> String {
        let flag = self.0.get(key).or_else(|| {
            key.strip_suffix(']')
                .and_then(|k| k.rsplit_once('['))
                .and_then(|(list, _)| self.0.get(list))
        });
        match flag {
            Some(flag) => format!("{flag} ({key})"),
            None => key.to_owned(),
        }
    }
}

/// Parses YAML text into the raw config. A syntax error, or a document
/// that is not a mapping, is a problem of `config.file`.
pub fn parse_yaml(text: &str) -> Result<RawConfig, ConfigError> {
    if text.trim().is_empty() {
        return Ok(RawConfig::default());
    }
    let value: Value = serde_norway::from_str(text).map_err(|e| {
        ConfigError::one(
            "config.file",
            format!("{e}; fix the YAML (see examples/config.yaml for every key)"),
        )
    })?;
    match value {
        Value::Null => Ok(RawConfig::default()),
        Value::Mapping(root) => Ok(RawConfig { root }),
        _ => Err(ConfigError::one(
            "config.file",
            "the file must be a YAML mapping of sections (web:, targets:, …); see examples/config.yaml",
        )),
    }
}

/// What a flag contributes: one value, or a list (repeatable flags).
pub enum FlagValue {
    One(Value),
    List(Vec<Value>),
}

/// One flag that sets a config key. `key` is a dotted path; a key under
/// `targets[]` applies to the single target the flags describe.
pub struct Flag {
    pub flag: &'static str,
    pub key: &'static str,
    pub value: fn(&ServeArgs) -> Option<FlagValue>,
}

fn text(v: &Option<String>) -> Option<FlagValue> {
    v.as_ref().map(|s| FlagValue::One(Value::String(s.clone())))
}

fn texts(v: &[String]) -> Option<FlagValue> {
    (!v.is_empty()).then(|| FlagValue::List(v.iter().cloned().map(Value::String).collect()))
}

/// Every flag that sets a config key, declared once.
pub const FLAGS: &[Flag] = &[
    Flag {
        flag: "--web.listen-address",
        key: "web.listen_address",
        value: |a| texts(&a.listen_addresses),
    },
    Flag {
        flag: "--web.config.file",
        key: "web.config_file",
        value: |a| {
            a.web_config_file
                .as_ref()
                .map(|p| FlagValue::One(Value::String(p.display().to_string())))
        },
    },
    Flag {
        flag: "--web.enable-lifecycle",
        key: "web.enable_lifecycle",
        value: |a| {
            a.web_enable_lifecycle
                .then_some(FlagValue::One(Value::Bool(true)))
        },
    },
    Flag {
        flag: "--firehose.listen-address",
        key: "firehose.listen_address",
        value: |a| text(&a.firehose_listen_address),
    },
    Flag {
        flag: "--firehose.access-key-file",
        key: "firehose.access_key_file",
        value: |a| {
            a.firehose_access_key_file
                .as_ref()
                .map(|p| FlagValue::One(Value::String(p.display().to_string())))
        },
    },
    Flag {
        flag: "--firehose.allow-unauthenticated",
        key: "firehose.allow_unauthenticated",
        value: |a| {
            a.firehose_allow_unauthenticated
                .then_some(FlagValue::One(Value::Bool(true)))
        },
    },
    Flag {
        flag: "--poll.enabled",
        key: "poll.enabled",
        value: |a| a.poll_enabled.map(|b| FlagValue::One(Value::Bool(b))),
    },
    Flag {
        flag: "--web.telemetry-path",
        key: "web.telemetry_path",
        value: |a| text(&a.telemetry_path),
    },
    Flag {
        flag: "--log.level",
        key: "log.level",
        value: |a| text(&a.log_level),
    },
    Flag {
        flag: "--log.format",
        key: "log.format",
        value: |a| text(&a.log_format),
    },
    Flag {
        flag: "--state.path",
        key: "state.path",
        value: |a| {
            a.state_path
                .as_ref()
                .map(|p| FlagValue::One(Value::String(p.display().to_string())))
        },
    },
    Flag {
        flag: "--limits.max-users-per-server",
        key: "limits.max_users_per_server",
        value: |a| {
            a.max_users_per_server
                .map(|n| FlagValue::One(Value::Number((n as u64).into())))
        },
    },
    Flag {
        flag: "--aws.region",
        key: "targets[].region",
        value: |a| text(&a.aws_region),
    },
    Flag {
        flag: "--aws.endpoint-url",
        key: "targets[].endpoint_url",
        value: |a| text(&a.aws_endpoint_url),
    },
    Flag {
        flag: "--aws.role-arn",
        key: "targets[].role_arn",
        value: |a| text(&a.aws_role_arn),
    },
    Flag {
        flag: "--logs.initial-lookback",
        key: "targets[].initial_lookback",
        value: |a| text(&a.initial_lookback),
    },
    Flag {
        flag: "--logs.late-arrival-window",
        key: "targets[].late_arrival_window",
        value: |a| text(&a.late_arrival_window),
    },
    Flag {
        flag: "--poll.interval",
        key: "targets[].poll_interval",
        value: |a| text(&a.poll_interval),
    },
    Flag {
        flag: "--logs.discovery-interval",
        key: "targets[].discovery_interval",
        value: |a| text(&a.discovery_interval),
    },
    Flag {
        flag: "--logs.page-limit",
        key: "targets[].page_limit",
        value: |a| {
            a.page_limit
                .map(|n| FlagValue::One(Value::Number((n as i64).into())))
        },
    },
    Flag {
        flag: "--aws.api-rate-per-second",
        key: "targets[].api_rate_per_second",
        value: |a| {
            a.api_rate_per_second
                .map(|x| FlagValue::One(Value::Number(x.into())))
        },
    },
    Flag {
        flag: "--logs.group-prefix",
        key: "targets[].log_group_prefixes",
        value: |a| texts(&a.group_prefixes),
    },
    Flag {
        flag: "--logs.group",
        key: "targets[].log_groups",
        value: |a| texts(&a.groups),
    },
];

fn into_value(v: FlagValue) -> Value {
    match v {
        FlagValue::One(v) => v,
        FlagValue::List(l) => Value::Sequence(l),
    }
}

/// The mapping at `key` of `map`, made (or replaced, if it is not a
/// mapping: the flag wins) when missing.
fn child<'m>(map: &'m mut Mapping, key: &str) -> &'m mut Mapping {
    let k = Value::String(key.to_owned());
    if !matches!(map.get(&k), Some(Value::Mapping(_))) {
        map.insert(k.clone(), Value::Mapping(Mapping::new()));
    }
    match map.get_mut(&k) {
        Some(Value::Mapping(m)) => m,
        _ => unreachable!("inserted a mapping above"),
    }
}

/// Lays the flags over `raw`, recording which keys they set. Target flags
/// describe one target: they fill the only target of the file, or make one
/// when the file has none; with several targets in the file they are a
/// problem (which target would they mean?).
pub fn overlay_flags(
    raw: &mut RawConfig,
    args: &ServeArgs,
    origins: &mut Origins,
    problems: &mut Vec<Problem>,
) {
    let mut target_values: Vec<(&'static str, &'static str, Value)> = Vec::new();
    for f in FLAGS {
        let Some(v) = (f.value)(args) else { continue };
        if let Some(field) = f.key.strip_prefix("targets[].") {
            target_values.push((f.flag, field, into_value(v)));
            continue;
        }
        let (section, field) = f.key.split_once('.').expect("flag keys are section.field");
        child(&mut raw.root, section).insert(Value::String(field.to_owned()), into_value(v));
        origins.0.insert(f.key.to_owned(), f.flag);
    }
    if target_values.is_empty() {
        return;
    }
    let tk = Value::String("targets".to_owned());
    let n = match raw.root.get(&tk) {
        Some(Value::Sequence(s)) => s.len(),
        _ => 0,
    };
    if n > 1 {
        let used: Vec<&str> = target_values.iter().map(|(f, _, _)| *f).collect();
        problems.push(Problem {
            key: used.join(", "),
            message: format!(
                "target flags apply to a single target, but the config file has {n} targets; \
                 set these keys per target in the file instead"
            ),
        });
        return;
    }
    if n == 0 {
        raw.root.insert(
            tk.clone(),
            Value::Sequence(vec![Value::Mapping(Mapping::new())]),
        );
    }
    let Some(Value::Sequence(targets)) = raw.root.get_mut(&tk) else {
        unreachable!("a one-element sequence is in place")
    };
    if !matches!(targets[0], Value::Mapping(_)) {
        targets[0] = Value::Mapping(Mapping::new());
    }
    let Value::Mapping(t) = &mut targets[0] else {
        unreachable!("replaced by a mapping above")
    };
    for (flag, field, v) in target_values {
        t.insert(Value::String(field.to_owned()), v);
        origins.0.insert(format!("targets[0].{field}"), flag);
    }
}
