#!/usr/bin/env python3
"""Generates the Grafana dashboards in grafana/dashboards/ (standard library only).

The JSON files are committed so that they can be imported as they are; this
script is their source. Edit it, run `python3 grafana/generate.py`, and commit
both. `python3 grafana/generate.py --check` exits 1 if a committed file
differs from what the script generates (scripts/check-deploy.sh runs it).

Every panel queries through the `datasource` template variable: no datasource
uid is hard-coded.

Every query gives the same answer with N exporter replicas (push shards or an
HA pair, each scraped as its own target) as with one: counters are summed by
labels that drop `instance`; gauges that several replicas export for the same
thing (inventory, probe results, last-seen times) are taken with max, lag with
min (the freshest replica); what every replica repeats on its own (the
endpoint probe) is counted per replica first, then the worst replica is
shown. Panels on the exporter-health dashboard that are about replicas
themselves (targets up, build) list or count instances on purpose. The advice column of the cause tables comes from
grafana/cause-advice.json, which a Rust test (tests/it/dashboards_static.rs)
keeps equal to the classifier's vocabulary (`classify::vocabulary()`).
"""

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}

ADVICE = json.loads((HERE / "cause-advice.json").read_text())


def advice_mappings(categories):
    """Value mappings "category/cause" -> advice for the given categories."""
    options = {}
    for i, row in enumerate(a for a in ADVICE if a["category"] in categories):
        options[f'{row["category"]}/{row["cause"]}'] = {"text": row["advice"], "index": i}
    return [{"type": "value", "options": options}]


class Layout:
    """Places panels left to right, wrapping at Grafana's 24 columns."""

    def __init__(self):
        self.x, self.y, self.row_h, self.next_id = 0, 0, 0, 1
        self.panels = []

    def add(self, panel, w, h):
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        panel["id"] = self.next_id
        panel["gridPos"] = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.next_id += 1
        self.x += w
        self.row_h = max(self.row_h, h)
        self.panels.append(panel)

    def row(self, title):
        if self.x:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        self.add({"type": "row", "title": title, "collapsed": False, "panels": []}, 24, 1)
        self.x, self.y, self.row_h = 0, self.y + 1, 0


def target(expr, legend="", ref="A", instant=False, table=False):
    t = {"datasource": DS, "expr": expr, "refId": ref, "legendFormat": legend or "__auto"}
    if instant:
        t["instant"] = True
        t["range"] = False
    if table:
        t["format"] = "table"
    return t


def timeseries(title, targets, unit="short", description="", overrides=None):
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": targets,
        "fieldConfig": {
            "defaults": {"unit": unit, "custom": {"fillOpacity": 10, "lineWidth": 1}},
            "overrides": overrides or [],
        },
        "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["max", "lastNotNull"]},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
    }


def stat(title, expr, unit="short", description="", mappings=None, thresholds=None):
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": [target(expr, instant=True)],
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "mappings": mappings or [],
                "thresholds": thresholds or {"mode": "absolute", "steps": [{"color": "green", "value": None}]},
            },
            "overrides": [],
        },
        "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "colorMode": "value", "graphMode": "none", "textMode": "auto"},
    }


def table(title, expr, description="", rename=None, overrides=None, unit="short"):
    rename = rename or {"Value": "count"}
    return {
        "type": "table",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": [target(expr, instant=True, table=True)],
        "transformations": [
            {"id": "organize", "options": {"excludeByName": {"Time": True}, "renameByName": rename}},
        ],
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": overrides or []},
        "options": {"showHeader": True, "cellHeight": "sm"},
    }


def var_datasource():
    return {"type": "datasource", "name": "datasource", "label": "Data source", "query": "prometheus",
            "current": {}, "hide": 0, "refresh": 1, "regex": "", "options": []}


def var_query(name, label, query, multi=False, include_all=False):
    v = {
        "type": "query", "name": name, "label": label, "datasource": DS,
        "definition": query, "query": {"query": query, "refId": f"{name}-var"},
        "refresh": 2, "sort": 1, "hide": 0, "current": {}, "options": [], "regex": "",
        "multi": multi, "includeAll": include_all,
    }
    if include_all:
        # ".*" also matches the empty user of unknown_user failures.
        v["allValue"] = ".*"
    return v


def dashboard(uid, title, description, layout, variables, tags=None):
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["aws-transfer-exporter"] + (tags or []),
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "1m",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": []},
        "links": [{"type": "dashboards", "tags": ["aws-transfer-exporter"], "asDropdown": True,
                   "title": "AWS Transfer", "includeVars": True, "keepTime": True}],
        "panels": layout.panels,
    }


def cause_table(title, selector, description):
    """The live cause table: category, cause, count in the range, advice."""
    expr = (
        'sort_desc(label_join(sum by (category, cause) (increase(aws_transfer_errors_total{%s}[$__range])) > 0,'
        ' "advice", "/", "category", "cause"))' % selector
    )
    overrides = [
        {"matcher": {"id": "byName", "options": "advice"},
         "properties": [{"id": "mappings", "value": advice_mappings(
             {"auth", "negotiation", "iam", "storage", "session", "workflow"})},
                        {"id": "custom.width", "value": 900}]},
    ]
    t = table(title, expr, description, overrides=overrides)
    t["options"]["sortBy"] = [{"displayName": "count", "desc": True}]
    return t


# ---------------------------------------------------------------- overview
def overview():
    L = Layout()
    sel = 'server_id=~"$server_id"'
    L.row("Summary")
    L.add(stat("Failures in range", f'sum(increase(aws_transfer_errors_total{{{sel}}}[$__range]))',
               description="Classified failures of every cause in the selected time range."), 6, 4)
    L.add(stat("Auth failures, last 5 min", f'sum(server_id:aws_transfer_auth_failures:rate5m{{{sel}}}) * 300',
               description="Authentication failures in the last 5 minutes (recording rule)."), 6, 4)
    L.add(stat("Sessions in range", f'sum(increase(aws_transfer_sessions_total{{{sel}}}[$__range]))',
               description="Successful logins (CONNECTED)."), 6, 4)
    L.add(stat("Bytes in range", f'sum(increase(aws_transfer_bytes_total{{{sel}}}[$__range]))', unit="bytes",
               description="Bytes of closed files, both directions."), 6, 4)
    L.row("Why transfers fail")
    L.add(timeseries("Failures by category (per minute)",
                     [target(f'sum by (category) (aws_transfer:errors:rate5m{{{sel}}}) * 60', "{{category}}")]), 12, 8)
    L.add(timeseries("Failures by cause (per minute)",
                     [target(f'sum by (category, cause) (aws_transfer:errors:rate5m{{{sel}}}) * 60',
                             "{{category}}/{{cause}}")]), 12, 8)
    L.add(timeseries(
        "Auth failures per 5 min vs. alert threshold",
        [target(f'server_id:aws_transfer_auth_failures:rate5m{{{sel}}} * 300', "{{server_id}}"),
         target('aws_transfer:auth_failure_spike_floor:count5m', "alert floor", "B"),
         target(f'4 * 300 * server_id:aws_transfer_auth_failures:rate5m_avg1d{{{sel}}}',
                "{{server_id}} 4x 1-day average", "C")],
        description="AWSTransferAuthFailureSpike fires when a server is above the floor, or above 10 and 4x its "
                    "1-day average, for 5 minutes.",
        overrides=[{"matcher": {"id": "byRegexp", "options": "alert floor|.*average"},
                    "properties": [{"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
                                   {"id": "color", "value": {"mode": "fixed", "fixedColor": "red"}}]}]), 12, 8)
    L.add(table("Top servers by failures",
                f'topk(10, sum by (server_id) (increase(aws_transfer_errors_total{{{sel}}}[$__range])))'), 6, 8)
    L.add(table("Top users by failures",
                f'topk(10, sum by (server_id, user) (increase(aws_transfer_errors_total{{{sel},user!=""}}[$__range])))',
                description="Users with unknown_user failures have no name (strangers' names are never labels)."),
          6, 8)
    L.add(cause_table("Causes and advice (all selected servers)", sel,
                      "Every failure cause seen in the range, with what to do about it."), 24, 9)
    L.add(table("Firing alerts", 'ALERTS{alertname=~"AWSTransfer.*", alertstate="firing"}',
                rename={"Value": "active", "__name__": "metric"}), 24, 6)
    L.row("Traffic")
    L.add(timeseries("Sessions per minute",
                     [target(f'sum by (server_id) (rate(aws_transfer_sessions_total{{{sel}}}[$__rate_interval])) * 60',
                             "{{server_id}}")]), 8, 8)
    L.add(timeseries("Files per minute",
                     [target(f'sum by (direction) (rate(aws_transfer_files_total{{{sel}}}[$__rate_interval])) * 60',
                             "{{direction}}")]), 8, 8)
    L.add(timeseries("Throughput",
                     [target(f'sum by (direction) (rate(aws_transfer_bytes_total{{{sel}}}[$__rate_interval]))',
                             "{{direction}}")], unit="Bps"), 8, 8)
    L.row("Connectors, AS2 and workflows")
    L.add(timeseries("Connector failures (per minute)",
                     [target('sum by (connector_id, cause) (rate(aws_transfer_connector_errors_total[$__rate_interval])) * 60',
                             "{{connector_id}} {{cause}}")]), 8, 8)
    L.add(timeseries("Connector operations (per minute)",
                     [target('sum by (connector_id, operation, status) '
                             '(rate(aws_transfer_connector_transfers_total[$__rate_interval])) * 60',
                             "{{connector_id}} {{operation}} {{status}}")]), 8, 8)
    L.add(timeseries("AS2 messages (per minute)",
                     [target('sum by (resource_id, direction, status) '
                             '(rate(aws_transfer_as2_messages_total[$__rate_interval])) * 60',
                             "{{resource_id}} {{direction}} {{status}}")]), 8, 8)
    L.add(table("AS2 failures by cause",
                'sum by (resource_id, direction, cause) (increase(aws_transfer_as2_errors_total[$__range]))'), 12, 8)
    L.add(timeseries("Workflow executions (per minute)",
                     [target('sum by (workflow_id, status) '
                             '(rate(aws_transfer_workflow_executions_total[$__rate_interval])) * 60',
                             "{{workflow_id}} {{status}}")]), 12, 8)
    L.row("Servers")
    L.add(table("Server inventory",
                f'max by (server_id, region, endpoint_type, protocols, identity_provider_type, domain) '
                f'(aws_transfer_server_info{{{sel}}})', rename={"Value": "info"}), 12, 8)
    L.add(table("Online and reachable",
                f'max by (server_id) (aws_transfer_server_online{{{sel}}})',
                rename={"Value": "online"},
                overrides=[{"matcher": {"id": "byName", "options": "online"},
                            "properties": [{"id": "mappings", "value": [{"type": "value", "options": {
                                "1": {"text": "ONLINE", "color": "green"},
                                "0": {"text": "not online", "color": "red"}}}]}]}]), 6, 8)
    L.add(table("Endpoint probe",
                f'max by (server_id, endpoint, port) (aws_transfer_endpoint_up{{{sel}}})',
                rename={"Value": "up"},
                overrides=[{"matcher": {"id": "byName", "options": "up"},
                            "properties": [{"id": "mappings", "value": [{"type": "value", "options": {
                                "1": {"text": "reachable", "color": "green"},
                                "0": {"text": "UNREACHABLE", "color": "red"}}}]}]}]), 6, 8)
    return dashboard("aws-transfer-overview", "AWS Transfer Family / Overview",
                     "Why AWS Transfer Family transfers fail, across servers.", L,
                     [var_datasource(),
                      var_query("server_id", "Server", "label_values(aws_transfer_events_total, server_id)",
                                multi=True, include_all=True)])


# ---------------------------------------------------------------- server
def server():
    L = Layout()
    s = 'server_id="$server_id"'
    su = 'server_id="$server_id",user=~"$user"'
    L.row("State")
    L.add(stat("Server state", f'max(aws_transfer_server_online{{{s}}})',
               mappings=[{"type": "value", "options": {"1": {"text": "ONLINE", "color": "green"},
                                                       "0": {"text": "NOT ONLINE", "color": "red"}}}]), 6, 4)
    # Worst endpoint, each judged like AWSTransferEndpointUnreachable: up if
    # any replica reaches it (max), so N replicas answer like one.
    L.add(stat("Endpoint reachable", f'min(max by (endpoint, port) (aws_transfer_endpoint_up{{{s}}}))',
               mappings=[{"type": "value", "options": {"1": {"text": "yes", "color": "green"},
                                                       "0": {"text": "NO", "color": "red"}}}],
               description="The exporter's own probe: tests the network path from where the exporter runs."), 6, 4)
    L.add(table("Logging mechanism", f'max by (mechanism) (aws_transfer_server_logging_configured{{{s}}})',
                rename={"Value": "configured"}), 6, 4)
    L.add(stat("Failures in range", f'sum(increase(aws_transfer_errors_total{{{su}}}[$__range]))'), 6, 4)
    L.row("Why transfers fail")
    L.add(cause_table("Causes and advice", su,
                      "Every failure cause of this server (and selected users) in the range, with what to do."),
          24, 9)
    L.add(timeseries("Failures by cause (per minute)",
                     [target(f'sum by (category, cause) (aws_transfer:errors:rate5m{{{su}}}) * 60',
                             "{{category}}/{{cause}}")]), 12, 8)
    L.add(timeseries("Failures by user (per minute)",
                     [target(f'sum by (user) (aws_transfer:errors:rate5m{{{su}}}) * 60', "{{user}}")],
                     description="An empty user is a failure before login (unknown user, negotiation)."), 12, 8)
    L.add(table("Failures by user and cause",
                f'sort_desc(sum by (user, category, cause) (increase(aws_transfer_errors_total{{{su}}}[$__range])) > 0)'),
          12, 8)
    L.add(table("Time since last session",
                f'time() - max by (user) (aws_transfer_user_last_session_timestamp_seconds{{{su}}})',
                rename={"Value": "silent for"}, unit="s",
                description="Partners that connect on a schedule and stop: the signature of an allow-list or "
                            "security-group change that logs nothing."), 12, 8)
    L.row("Traffic")
    L.add(timeseries("Sessions per minute by user",
                     [target(f'sum by (user) (rate(aws_transfer_sessions_total{{{su}}}[$__rate_interval])) * 60',
                             "{{user}}")]), 8, 8)
    L.add(timeseries("Files per minute by user",
                     [target(f'sum by (user, direction) (rate(aws_transfer_files_total{{{su}}}[$__rate_interval])) * 60',
                             "{{user}} {{direction}}")]), 8, 8)
    L.add(timeseries("Throughput by user",
                     [target(f'sum by (user, direction) (rate(aws_transfer_bytes_total{{{su}}}[$__rate_interval]))',
                             "{{user}} {{direction}}")], unit="Bps"), 8, 8)
    L.add(timeseries("Events by activity (per minute)",
                     [target(f'sum by (activity) (rate(aws_transfer_events_total{{{s}}}[$__rate_interval])) * 60',
                             "{{activity}}")]), 12, 8)
    L.add(timeseries("Unattributed events (per minute)",
                     [target(f'sum(rate(aws_transfer_exporter_unattributed_events_total{{{s}}}[$__rate_interval])) * 60',
                             "no user")],
                     description="Events whose user could not be found (no user field, stream name or session)."),
          12, 8)
    L.row("Endpoint probe")
    L.add(timeseries("Probe duration",
                     [target(f'max by (endpoint, port) (aws_transfer_endpoint_probe_duration_seconds{{{s}}})',
                             "{{endpoint}}:{{port}}")], unit="s"), 12, 8)
    # Every replica probes every endpoint: a sum would multiply the failures
    # by the number of replicas. Count per replica, show the worst one.
    L.add(table("Probe failures by reason",
                f'max by (reason) (sum by (instance, reason) '
                f'(increase(aws_transfer_endpoint_probe_failures_total{{{s}}}[$__range])))',
                description="Failed probes of the replica that failed most (every replica probes every "
                            "endpoint)."), 12, 8)
    return dashboard("aws-transfer-server", "AWS Transfer Family / Server",
                     "One server: causes with advice, users, traffic and reachability.", L,
                     [var_datasource(),
                      var_query("server_id", "Server", "label_values(aws_transfer_events_total, server_id)"),
                      var_query("user", "User",
                                'label_values({__name__=~"aws_transfer_(errors|sessions)_total",'
                                'server_id="$server_id"}, user)', multi=True, include_all=True)])


# ---------------------------------------------------------------- exporter health
def health():
    L = Layout()
    i = 'instance=~"$instance"'
    L.row("Exporter")
    L.add(stat("Targets up", f'sum(up{{job="aws-transfer-exporter",{i}}})'), 6, 4)
    L.add(stat("Log groups polled", f'sum(aws_transfer_exporter_log_groups{{{i}}})'), 6, 4)
    L.add(stat("Effective poll interval", f'max(aws_transfer_exporter_poll_interval_seconds{{{i}}})', unit="s",
               description="Above the configured interval when the API budget cannot cover every group."), 6, 4)
    L.add(table("Build", f'max by (instance, version, revision) (aws_transfer_exporter_build_info{{{i}}})',
                rename={"Value": "info"}), 6, 4)
    L.row("AWS API")
    L.add(timeseries("API calls by operation and outcome (per second)",
                     [target(f'sum by (operation, outcome) '
                             f'(rate(aws_transfer_exporter_api_calls_total{{{i}}}[$__rate_interval]))',
                             "{{operation}} {{outcome}}")], unit="reqps"), 12, 8)
    L.add(timeseries("Throttled API calls (per second)",
                     [target(f'sum by (operation) '
                             f'(rate(aws_transfer_exporter_api_calls_total{{{i},outcome="throttled"}}[$__rate_interval]))',
                             "{{operation}}")], unit="reqps"), 12, 8)
    L.add(timeseries("API call latency p99",
                     [target(f'histogram_quantile(0.99, sum by (operation, le) '
                             f'(rate(aws_transfer_exporter_api_call_duration_seconds_bucket{{{i}}}[$__rate_interval])))',
                             "{{operation}}")], unit="s"), 12, 8)
    L.add(timeseries("Poll round duration p90",
                     [target(f'histogram_quantile(0.9, sum by (log_group, le) '
                             f'(rate(aws_transfer_exporter_poll_duration_seconds_bucket{{{i}}}[$__rate_interval])))',
                             "{{log_group}}")], unit="s"), 12, 8)
    L.row("Log groups")
    L.add(timeseries("Lag (now minus newest event counted)",
                     [target(f'min by (log_group) (aws_transfer_exporter_log_group_lag_seconds{{{i}}})',
                             "{{log_group}}")], unit="s",
                     description="The freshest replica's lag (like AWSTransferExporterLagHigh). Grows on quiet "
                                 "groups too; the alert only fires while events are being read."), 12, 8)
    L.add(timeseries("Time since last successful poll",
                     [target(f'time() - max by (log_group) '
                             f'(aws_transfer_exporter_last_successful_poll_timestamp_seconds{{{i}}})',
                             "{{log_group}}")], unit="s"), 12, 8)
    L.add(timeseries("Poll errors (per minute)",
                     [target(f'sum by (log_group, kind) '
                             f'(rate(aws_transfer_exporter_poll_errors_total{{{i}}}[$__rate_interval])) * 60',
                             "{{log_group}} {{kind}}")]), 12, 8)
    L.add(timeseries("Events read, duplicate and late (per second)",
                     [target(f'sum by (log_group) (rate(aws_transfer_exporter_events_read_total{{{i}}}[$__rate_interval]))',
                             "read {{log_group}}"),
                      target(f'sum by (log_group) '
                             f'(rate(aws_transfer_exporter_events_duplicate_total{{{i}}}[$__rate_interval]))',
                             "duplicate {{log_group}}", "B"),
                      target(f'sum by (log_group) (rate(aws_transfer_exporter_events_late_total{{{i}}}[$__rate_interval]))',
                             "late {{log_group}}", "C")]), 12, 8)
    L.add(table("Time since newest event",
                f'time() - max by (log_group) (aws_transfer_exporter_log_group_last_event_timestamp_seconds{{{i}}})',
                rename={"Value": "age"}, unit="s"), 12, 8)
    L.row("Data quality")
    L.add(timeseries("Unparsed events (per minute)",
                     [target(f'sum by (format, reason) '
                             f'(rate(aws_transfer_exporter_unparsed_events_total{{{i}}}[$__rate_interval])) * 60',
                             "{{format}} {{reason}}")]), 8, 8)
    L.add(timeseries("Overflowed label values (per minute)",
                     [target(f'sum by (label) '
                             f'(rate(aws_transfer_exporter_label_overflow_total{{{i}}}[$__rate_interval])) * 60',
                             "{{label}}")]), 8, 8)
    L.add(timeseries("State-file writes (per minute)",
                     [target(f'sum by (outcome) '
                             f'(rate(aws_transfer_exporter_state_writes_total{{{i}}}[$__rate_interval])) * 60',
                             "{{outcome}}")]), 8, 8)
    L.add(timeseries("Unattributed events (per minute)",
                     [target(f'sum by (server_id) '
                             f'(rate(aws_transfer_exporter_unattributed_events_total{{{i}}}[$__rate_interval])) * 60',
                             "{{server_id}}")],
                     description="Server events whose user could not be found (sessions begun before the "
                                 "exporter started, and no per-user stream)."), 12, 8)
    L.add(timeseries("Legacy copies skipped (per minute)",
                     [target(f'sum by (server_id) '
                             f'(rate(aws_transfer_exporter_legacy_duplicates_skipped_total{{{i}}}[$__rate_interval])) * 60',
                             "{{server_id}}")],
                     description="Servers with both logging mechanisms deliver every event twice; the legacy "
                                 "copy is skipped so each event counts once."), 12, 8)
    L.add(timeseries("State write latency p99 (what a scrape waits for)",
                     [target(f'histogram_quantile(0.99, sum by (kind, le) '
                             f'(rate(aws_transfer_exporter_state_write_duration_seconds_bucket{{{i}}}[$__rate_interval])))',
                             "{{kind}}")], unit="s",
                     description="Successful state writes by kind: record (a journal record appended, every "
                                 "scrape) and whole (the state file rewritten: a first start, a compaction). "
                                 "Scrapes and Firehose acknowledgements wait for them."), 12, 8)
    return dashboard("aws-transfer-exporter-health", "AWS Transfer Family / Exporter health",
                     "Is the exporter itself seeing everything? API calls, throttles, lag, data quality.", L,
                     [var_datasource(),
                      var_query("instance", "Instance", "label_values(aws_transfer_exporter_build_info, instance)",
                                multi=True, include_all=True)])


def main():
    check = "--check" in sys.argv[1:]
    stale = []
    for name, build in [("overview", overview), ("server", server), ("exporter-health", health)]:
        path = OUT / f"aws-transfer-{name}.json"
        text = json.dumps(build(), indent=2, ensure_ascii=False) + "\n"
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            OUT.mkdir(exist_ok=True)
            path.write_text(text)
    if stale:
        print("out of date (run python3 grafana/generate.py):", *stale, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
