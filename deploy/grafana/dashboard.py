"""mailpulse's Grafana dashboard, as code (Grafana's own grafana-foundation-sdk).

    python deploy/grafana/dashboard.py > deploy/grafana/mailpulse.json

The JSON is committed (importable as is: Dashboards > New > Import) and
``tests/deploy/test_dashboard.py`` checks it is what this file generates, so
review this file, not the JSON. Alert thresholds are drawn from the same
defaults the rules use (``mailpulse.alerts.AlertSettings``). The datasource is
a variable: no datasource uid is written into the dashboard.
"""

from __future__ import annotations

import json
import sys

from grafana_foundation_sdk.builders import dashboard, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import GraphTresholdsStyleMode
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    DynamicConfigValue,
    ThresholdsMode,
    VariableRefresh,
)
from grafana_foundation_sdk.models.dashboard import Threshold as ThresholdStep

from mailpulse.alerts import AlertSettings

UID = "mailpulse"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
# The variables' selector every deliverability and engagement query carries.
SEL = 'provider=~"$provider", source=~"$source"'
HOUR = 'window=~"current_hour|previous_hour"'


def _query(expr: str, legend: str, *, instant: bool = False, ref: str = "A") -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DATASOURCE)
    return q.instant() if instant else q


def _thresholds(*steps: tuple[float | None, str]) -> dashboard.ThresholdsConfig:
    return (
        dashboard.ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([ThresholdStep(value=v, color=c) for v, c in steps])
    )


def _ratio(metric: str, num: str, den: str, by: str, window: str) -> str:
    w = f", {window}" if window else ""
    return f'sum by ({by}) ({metric}{{flag="{num}", {SEL}{w}}})\n/\nsum by ({by}) ({metric}{{flag="{den}", {SEL}{w}}})'


def _rate_panel(
    title: str, description: str, num: str, den: str, *, by: str, scope: str, warning: float, critical: float | None
) -> timeseries.Panel:
    """A rate over the last hour (windows) beside the all-time rate, alert thresholds drawn as lines."""
    window_metric, total_metric = f"mailpulse_{scope}_window_messages", f"mailpulse_{scope}_messages"
    legend = "{{" + "}} {{".join(by.split(", ")) + "}}"
    steps: list[tuple[float | None, str]] = [(None, "green"), (warning, "orange")]
    if critical is not None:
        steps.append((critical, "red"))
    return (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit("percentunit")
        .min(0)
        .with_target(_query(_ratio(window_metric, num, den, by, HOUR), f"{legend} last hour", ref="A"))
        .with_target(_query(_ratio(total_metric, num, den, by, ""), f"{legend} all-time", ref="B"))
        .thresholds(_thresholds(*steps))
        .thresholds_style(timeseries_thresholds_style())
        .height(8)
        .span(8)
    )


def timeseries_thresholds_style():  # noqa: ANN201  (a builder of the SDK)
    from grafana_foundation_sdk.builders.common import GraphThresholdsStyleConfig

    return GraphThresholdsStyleConfig().mode(GraphTresholdsStyleMode.LINE)


def _deliverability(s: AlertSettings) -> list:
    panels = []
    for scope, by, where in (
        ("source", "provider, source", "per source"),
        ("mailbox", "source, mailbox_provider", "per source and mailbox provider"),
    ):
        panels += [
            _rate_panel(
                f"Bounce rate {where}",
                "bounced / sent; lines: the warning and critical alert thresholds.",
                "bounced",
                "sent",
                by=by,
                scope=scope,
                warning=s.bounce_rate_warning,
                critical=s.bounce_rate_critical,
            ),
            _rate_panel(
                f"Complaint rate {where}",
                "complained / delivered; Gmail and Yahoo require < 0.1%, never 0.3%.",
                "complained",
                "delivered",
                by=by,
                scope=scope,
                warning=s.complaint_rate_warning,
                critical=s.complaint_rate_critical,
            ),
            _rate_panel(
                f"Deferral rate {where}",
                "deferred / sent: receiving servers answering 4xx.",
                "deferred",
                "sent",
                by=by,
                scope=scope,
                warning=s.deferral_rate_warning,
                critical=None,
            ),
        ]
    return panels


_CAMPAIGN_SEL = f'{SEL}, campaign=~"$campaign"'
# The 10 campaigns that sent most in the last hour, among those the worker exports.
_TOP10 = (
    f'topk(10, sum by (source, campaign) (mailpulse_campaign_window_messages{{flag="sent", {_CAMPAIGN_SEL}, {HOUR}}}))'
)


def _campaign_rate(num: str, den: str) -> str:
    return (
        f'(sum by (source, campaign) (mailpulse_campaign_messages{{flag="{num}", {_CAMPAIGN_SEL}}})\n'
        f'/ sum by (source, campaign) (mailpulse_campaign_messages{{flag="{den}", {_CAMPAIGN_SEL}}}))\n'
        f"and on (source, campaign) {_TOP10}"
    )


def _engagement(s: AlertSettings) -> list:
    rates = [
        ("Open rate of the most active campaigns", "opened / delivered", "opened", "delivered"),
        ("Click rate of the most active campaigns", "clicked / delivered", "clicked", "delivered"),
        ("Click-to-open rate of the most active campaigns", "clicked / opened", "clicked", "opened"),
    ]
    panels: list = [
        timeseries.Panel()
        .title(title)
        .description(f"{what}, all-time, of the 10 exported campaigns that sent most in the last hour.")
        .datasource(DATASOURCE)
        .unit("percentunit")
        .min(0)
        .with_target(_query(_campaign_rate(num, den), "{{source}} {{campaign}}"))
        .height(8)
        .span(8)
        for title, what, num, den in rates
    ]
    volume = f'sum by (source, campaign) (mailpulse_campaign_messages{{flag="sent", {_CAMPAIGN_SEL}}})'
    bounce = (
        f'sort_desc(\n  sum by (source, campaign) (mailpulse_campaign_messages{{flag="bounced", {_CAMPAIGN_SEL}}})\n'
        f"  / {volume}\n  and on (source, campaign) {volume} >= $min_sent\n)"
    )
    panels.append(
        table.Panel()
        .title("Campaigns by bounce rate (at least $min_sent sent)")
        .description("All-time bounce rate of the exported campaigns; a row links to the campaign in the query API.")
        .datasource(DATASOURCE)
        .unit("percentunit")
        .with_target(_query(bounce, "", instant=True).format("table"))
        .thresholds(_thresholds((None, "green"), (s.bounce_rate_warning, "orange"), (s.bounce_rate_critical, "red")))
        .override_by_name(
            "campaign",
            [
                DynamicConfigValue(
                    id_val="links",
                    value=[
                        {
                            "title": "campaign in the query API",
                            "url": "${api_url}/v1/campaigns/${__data.fields.source}:${__data.fields.campaign}",
                            "targetBlank": True,
                        }
                    ],
                )
            ],
        )
        .height(10)
        .span(24)
    )
    return panels


def _series(title: str, description: str, unit: str, *targets: tuple[str, str], span: int = 8) -> timeseries.Panel:
    panel = (
        timeseries.Panel().title(title).description(description).datasource(DATASOURCE).unit(unit).height(8).span(span)
    )
    for i, (expr, legend) in enumerate(targets):
        panel = panel.with_target(_query(expr, legend, ref=chr(ord("A") + i)))
    return panel


def _pipeline() -> list:
    return [
        _series(
            "Events published per provider and type",
            "Events the pollers committed to mailpulse.events.v1.",
            "ops",
            (
                'sum by (provider, type) (rate(mailpulse_connector_events_published_total{provider=~"$provider", '
                'source=~"$source"}[$__rate_interval]))',
                "{{provider}} {{type}}",
            ),
        ),
        _series(
            "Poll errors and retries",
            "Requests answered with an error or not at all, and requests retried.",
            "ops",
            (
                'sum by (source, status) (rate(mailpulse_connector_requests_total{status!~"2..", '
                'provider=~"$provider", source=~"$source"}[$__rate_interval]))',
                "{{source}} {{status}}",
            ),
            (
                'sum by (source) (rate(mailpulse_connector_retries_total{provider=~"$provider", '
                'source=~"$source"}[$__rate_interval]))',
                "{{source}} retries",
            ),
        ),
        _series(
            "Cursor lag",
            "Provider clock minus the committed cursor, per stream.",
            "s",
            (
                'max by (source, stream) (mailpulse_connector_cursor_lag_seconds{provider=~"$provider", '
                'source=~"$source"})',
                "{{source}}/{{stream}}",
            ),
        ),
        _series(
            "Dead letters",
            "Records sent to mailpulse.dlq.v1 in the last hour.",
            "short",
            (
                'sum by (source) (increase(mailpulse_connector_dlq_records_total{provider=~"$provider", '
                'source=~"$source"}[1h]))',
                "{{source}}",
            ),
        ),
        _series(
            "Worker consumer lag",
            "Events records not yet read by the workers.",
            "short",
            ("sum by (instance) (mailpulse_stream_lag_records)", "{{instance}}"),
        ),
        _series(
            "Freshness p50 / p99",
            "Time from an event's occurred_at (and from when a poller observed it) to the worker applying it.",
            "s",
            (
                "histogram_quantile(0.5, sum by (le, provider) (rate(mailpulse_stream_event_delay_seconds_bucket"
                '{since="occurred_at", provider=~"$provider"}[$__rate_interval])))',
                "{{provider}} p50 since occurred",
            ),
            (
                "histogram_quantile(0.99, sum by (le, provider) (rate(mailpulse_stream_event_delay_seconds_bucket"
                '{since="occurred_at", provider=~"$provider"}[$__rate_interval])))',
                "{{provider}} p99 since occurred",
            ),
            (
                "histogram_quantile(0.99, sum by (le, provider) (rate(mailpulse_stream_event_delay_seconds_bucket"
                '{since="observed_at", provider=~"$provider"}[$__rate_interval])))',
                "{{provider}} p99 since observed",
            ),
        ),
        stat.Panel()
        .title("Workers ready")
        .description("1: tables recovered, views built, the API answers.")
        .datasource(DATASOURCE)
        .with_target(_query("mailpulse_stream_ready", "{{instance}}", instant=True))
        .thresholds(_thresholds((None, "red"), (1, "green")))
        .height(4)
        .span(24),
    ]


def _label_variable(name: str, label: str, query: str) -> dashboard.QueryVariable:
    return (
        dashboard.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query({"query": query, "refId": f"{name}-values"})
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )


def build(settings: AlertSettings | None = None) -> dashboard.Dashboard:
    s = settings or AlertSettings()
    board = (
        dashboard.Dashboard("mailpulse")
        .uid(UID)
        .description(
            "Deliverability, engagement and pipeline health of mailpulse (generated from deploy/grafana/dashboard.py)."
        )
        .tags(["mailpulse", "email"])
        .refresh("1m")
        .time("now-6h", "now")
        .timezone("browser")
        .with_variable(dashboard.DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
        .with_variable(_label_variable("provider", "provider", "label_values(mailpulse_source_messages, provider)"))
        .with_variable(
            _label_variable(
                "source", "source", 'label_values(mailpulse_source_messages{provider=~"$provider"}, source)'
            )
        )
        .with_variable(
            _label_variable(
                "campaign", "campaign", 'label_values(mailpulse_campaign_messages{source=~"$source"}, campaign)'
            )
        )
        .with_variable(
            dashboard.TextBoxVariable("min_sent")
            .label("min. sent")
            .description("Campaigns with fewer messages sent are left out of the bounce-rate table.")
            .default_value(str(s.min_sent_1h))
        )
        .with_variable(
            dashboard.TextBoxVariable("api_url")
            .label("query API")
            .description("Base URL of a worker's query API, for the campaign links.")
            .default_value("http://127.0.0.1:6066")
        )
        .with_row(dashboard.Row("Deliverability"))
    )
    for panel in _deliverability(s):
        board = board.with_panel(panel)
    board = board.with_row(dashboard.Row("Engagement"))
    for panel in _engagement(s):
        board = board.with_panel(panel)
    board = board.with_row(dashboard.Row("Pipeline"))
    for panel in _pipeline():
        board = board.with_panel(panel)
    return board.build()


def dashboard_json(settings: AlertSettings | None = None) -> str:
    board = json.loads(JSONEncoder(sort_keys=True, indent=2).encode(build(settings)))
    for number, panel in enumerate(board["panels"], start=1):
        panel["id"] = number  # Grafana links and repeats need unique ids; the SDK leaves 0 on rows
        if panel.get("options") is None:
            panel.pop("options", None)  # the SDK writes null where the panel has no options of its own
    return json.dumps(board, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(dashboard_json())
