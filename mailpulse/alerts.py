"""mailpulse's Prometheus alert rules, generated from thresholds that are data.

``deploy/prometheus/mailpulse-alerts.yml`` is ``render_rules(AlertSettings())``
(a test keeps it current); ``mailpulse alerts rules --config F`` renders the
same rules with the thresholds of a config file's ``alerts:`` section, so an
operator changes a threshold without editing rules by hand. The Helm chart's
``templates/_alert-rules.tpl`` is the same rules again, with each threshold a
reference to the chart's ``alerts.thresholds`` values (``helm_rules_template``):
one generator, so the chart cannot drift from the rules file.

Deliverability thresholds follow what mailbox providers and ESPs enforce:
Gmail's and Yahoo's bulk-sender rules keep spam complaints under 0.1% and never
at 0.3%; Amazon SES reviews an account at 5% bounces or 0.1% complaints. Rates
are the API's: bounce = bounced/sent, complaint = complained/delivered,
deferral = deferred/sent. Each alert has a minimum volume (messages sent in
the window) so that 1 bounce in 2 sends never pages.

Windows are hourly windows of event time (a flag counts in the hour of its
``occurred_at``), exported by the worker as absolute figures: "1h" reads the
current and the previous hourly window together (60-120 minutes, so a rate
does not reset at the top of the hour), "24h" the last 24 hours.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AlertSettings",
    "DELIVERABILITY_ALERTS",
    "helm_rules_template",
    "helm_value_name",
    "render_rules",
    "rules_yaml",
]


class AlertSettings(BaseModel):
    """The ``alerts:`` section of the config file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    complaint_rate_warning: float = Field(default=0.001, gt=0, le=1)
    complaint_rate_critical: float = Field(default=0.003, gt=0, le=1)
    bounce_rate_warning: float = Field(default=0.03, gt=0, le=1)
    bounce_rate_critical: float = Field(default=0.05, gt=0, le=1)
    deferral_rate_warning: float = Field(default=0.15, gt=0, le=1)
    #: Messages sent in the window before a rate may alert.
    min_sent_1h: int = Field(default=200, ge=1)
    min_sent_24h: int = Field(default=1000, ge=1)
    #: Where docs/runbooks.md is served; each alert links to its section.
    runbook_url: str = "docs/runbooks.md"


@dataclass(frozen=True)
class _Scope:
    name: str  # the value of the alert's ``scope`` label
    metric: str
    labels: tuple[str, ...]
    where: str  # how the summary names the place


_SCOPES = {
    "source": _Scope(
        "source", "mailpulse_source_window_messages", ("provider", "source"), "source {{ $labels.source }}"
    ),
    "mailbox_provider": _Scope(
        "mailbox_provider",
        "mailpulse_mailbox_window_messages",
        ("provider", "source", "mailbox_provider"),
        "source {{ $labels.source }} at mailbox provider {{ $labels.mailbox_provider }}",
    ),
    "campaign": _Scope(
        "campaign",
        "mailpulse_campaign_window_messages",
        ("provider", "source", "campaign"),
        "campaign {{ $labels.campaign }} of source {{ $labels.source }}",
    ),
}

_WINDOWS = {"1h": ('window=~"current_hour|previous_hour"', "10m"), "24h": ('window="last_24h"', "30m")}


@dataclass(frozen=True)
class _Rate:
    alert: str
    noun: str
    numerator: str
    denominator: str
    severities: tuple[str, ...]  # "warning", "critical": each reads <rate>_rate_<severity>
    scopes: tuple[str, ...]
    meaning: str


DELIVERABILITY_ALERTS = (
    _Rate(
        "MailpulseComplaintRateHigh",
        "complaint",
        "complained",
        "delivered",
        ("warning", "critical"),
        ("source", "mailbox_provider"),
        "Recipients mark these messages as spam. Gmail and Yahoo require bulk senders to stay under 0.1% "
        "and start rejecting mail at 0.3%; Amazon SES reviews an account at 0.1%.",
    ),
    _Rate(
        "MailpulseBounceRateHigh",
        "bounce",
        "bounced",
        "sent",
        ("warning", "critical"),
        ("source", "mailbox_provider", "campaign"),
        "Messages are bouncing. Amazon SES reviews an account at 5% bounces; a spike at one mailbox provider "
        "is usually a block or a reputation problem there, a spike in one campaign a bad list.",
    ),
    _Rate(
        "MailpulseDeferralRateHigh",
        "deferral",
        "deferred",
        "sent",
        ("warning",),
        ("source", "mailbox_provider"),
        "Receiving servers are delaying messages (4xx answers): throttling or a reputation warning that often "
        "comes before bounces.",
    ),
)


def _anchor(alert: str) -> str:
    return alert.lower()


class _Literal:
    """The settings' values, formatted into a rule as Prometheus reads them."""

    def __init__(self, settings: AlertSettings) -> None:
        self._s = settings

    def number(self, field: str) -> str:
        return f"{getattr(self._s, field):g}"

    def percent(self, field: str) -> str:
        return f"{getattr(self._s, field):.2%}"

    def text(self, field: str) -> str:
        return str(getattr(self._s, field))


def helm_value_name(field: str) -> str:
    """``bounce_rate_warning`` -> ``bounceRateWarning``: the chart's values are camelCase."""
    head, *rest = field.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


class _HelmRefs:
    """Placeholders that become Go template expressions reading ``.Values.alerts.thresholds``.

    The rules are rendered with placeholders, dumped as YAML, their own ``{{ }}``
    (Prometheus templates) escaped for Helm, and then the placeholders replaced,
    so no YAML quoting or escaping can touch the Go expressions.
    """

    def __init__(self) -> None:
        self.expressions: dict[str, str] = {}

    def _token(self, expression: str) -> str:
        token = f"@@MAILPULSE{len(self.expressions)}@@"
        self.expressions[token] = expression
        return token

    def _value(self, field: str) -> str:
        if field == "runbook_url":  # not a threshold: where the runbooks are served
            return ".Values.alerts.runbookUrl"
        return f".Values.alerts.thresholds.{helm_value_name(field)}"

    def number(self, field: str) -> str:
        if field.startswith("min_sent"):
            return self._token(f"{{{{ {self._value(field)} | int }}}}")
        return self._token(f'{{{{ {self._value(field)} | float64 | printf "%g" }}}}')

    def percent(self, field: str) -> str:
        return self._token(f'{{{{ mulf ({self._value(field)} | float64) 100 | printf "%.2f" }}}}%')

    def text(self, field: str) -> str:
        return self._token(f"{{{{ {self._value(field)} }}}}")


_Formats = _Literal | _HelmRefs


def _deliverability_rule(rate: _Rate, scope: _Scope, window: str, severity: str, f: _Formats) -> dict[str, Any]:
    selector, hold = _WINDOWS[window]
    by = ", ".join(scope.labels)
    threshold_field = f"{rate.noun}_rate_{severity}"
    volume = f.number(f"min_sent_{window}")

    def total(flag: str) -> str:
        return f'sum by ({by}) ({scope.metric}{{flag="{flag}", {selector}}})'

    expr = (
        f"(\n  {total(rate.numerator)}\n/\n  {total(rate.denominator)}\n) > {f.number(threshold_field)}\n"
        f"and on ({by})\n  {total('sent')} >= {volume}\n"
    )
    return {
        "alert": rate.alert,
        "expr": expr,
        "for": hold,
        "labels": {"severity": severity, "scope": scope.name, "window": window},
        "annotations": {
            "summary": f"{rate.noun} rate {{{{ $value | humanizePercentage }}}} over {window} for {scope.where} "
            f"(threshold {f.percent(threshold_field)})",
            "description": f"{rate.meaning} Labels {', '.join(scope.labels)} locate it; the rate is "
            f"{rate.numerator}/{rate.denominator} of the messages in the {window} window, with at least {volume} sent.",
            "runbook_url": f"{f.text('runbook_url')}#{_anchor(rate.alert)}",
        },
    }


def _deliverability_rules(f: _Formats) -> list[dict[str, Any]]:
    return [
        _deliverability_rule(rate, _SCOPES[scope], window, severity, f)
        for rate in DELIVERABILITY_ALERTS
        for scope in rate.scopes
        for window in _WINDOWS
        for severity in rate.severities
        # Campaigns are exported with the current and previous hour only (their series count is the largest).
        if not (scope == "campaign" and window == "24h")
    ]


# The pipeline's own health: alert, expression, hold, severity, summary, description.
_PIPELINE: dict[str, list[tuple[str, str, str | None, str, str, str]]] = {
    "mailpulse-connectors": [
        (
            "MailpulseSourceStopped",
            "mailpulse_connector_source_up == 0",
            "2m",
            "critical",
            "mailpulse source {{ $labels.source }} ({{ $labels.provider }}) has stopped polling",
            "A fatal error (usually 401/403: a revoked or wrong API key) stopped the source. Check the connector's "
            "log for the source, fix its key in the config's environment, and restart `mailpulse connect`. "
            "The other sources keep running.",
        ),
        (
            "MailpulseStreamStopped",
            "mailpulse_connector_stream_up == 0",
            "5m",
            "critical",
            "mailpulse stream {{ $labels.source }}/{{ $labels.stream }} has stopped",
            "The stream stopped rather than skip data (an unpageable run of equal timestamps, a fenced producer, "
            "an auth error). The connector log names the cause.",
        ),
        (
            "MailpulseAuthFailures",
            "increase(mailpulse_connector_auth_failures_total[10m]) > 0",
            None,
            "critical",
            "{{ $labels.provider }} rejected the credentials of source {{ $labels.source }}",
            "401/403 from the provider. Rotate or fix the secret; the source stays stopped until restart.",
        ),
        (
            "MailpulsePollerStale",
            "time() - mailpulse_connector_last_success_timestamp_seconds > 1800",
            "5m",
            "warning",
            "no completed poll of {{ $labels.source }}/{{ $labels.stream }} for 30 minutes",
            "Passes keep failing or hang (provider outage, 429 storms, Kafka unavailable). See "
            "mailpulse_connector_requests_total by status and the connector log.",
        ),
        (
            "MailpulseCursorLagHigh",
            "mailpulse_connector_cursor_lag_seconds > 3 * 3600",
            "15m",
            "warning",
            "{{ $labels.source }}/{{ $labels.stream }} is {{ $value | humanizeDuration }} behind the provider",
            "The committed cursor trails the provider's clock: the poller cannot keep up or keeps failing mid-pass.",
        ),
        (
            "MailpulseDeadLetters",
            "increase(mailpulse_connector_dlq_records_total[30m]) > 0",
            None,
            "warning",
            "{{ $value }} records of {{ $labels.source }} went to the dead-letter topic in 30 minutes",
            "Records that could not be normalised are in mailpulse.dlq.v1 with the reason and the raw payload. "
            "Nothing is lost; inspect them and fix the normalisation or the provider data.",
        ),
        (
            "MailpulseTransactionsAborting",
            'increase(mailpulse_connector_transactions_total{outcome="aborted"}[15m]) > 2',
            None,
            "warning",
            "Kafka transactions of {{ $labels.source }}/{{ $labels.stream }} keep aborting",
            "Batches are not committing (Kafka errors, a fenced second copy of the poller). Nothing is duplicated, "
            "but nothing advances either.",
        ),
        (
            "MailpulseProviderRetriesHigh",
            "sum by (provider, source) (rate(mailpulse_connector_retries_total[10m]))\n"
            "  / sum by (provider, source) (rate(mailpulse_connector_requests_total[10m])) > 0.25\n",
            "15m",
            "warning",
            "over 25% of {{ $labels.source }}'s requests to {{ $labels.provider }} are retried",
            "Rate limits (429) or provider errors (5xx). Consider a longer poll_interval.",
        ),
    ],
    "mailpulse-streams": [
        (
            "MailpulseWorkerNotReady",
            "mailpulse_stream_ready == 0",
            "10m",
            "critical",
            "mailpulse worker {{ $labels.instance }} has not been ready for 10 minutes",
            "Table recovery or a rebalance is not finishing; the API answers 503. Check the worker log and the "
            "changelog topics.",
        ),
        (
            "MailpulseWorkerPartitionStalled",
            "mailpulse_stream_lag_records > 1000 and changes(mailpulse_stream_read_offset[15m]) == 0",
            "5m",
            "critical",
            "worker {{ $labels.instance }} reads nothing from events partition {{ $labels.partition }} "
            "({{ $value }} records behind)",
            "The worker is up but this partition's read offset has not moved for 15 minutes while records wait. "
            "Send SIGUSR1 to the worker to log its tasks, then restart it; its partitions move to the other workers.",
        ),
        (
            "MailpulseWorkerInvalidEvents",
            'increase(mailpulse_stream_events_total{result="invalid"}[30m]) > 0',
            None,
            "warning",
            "the worker read {{ $value }} events it could not decode",
            "Events that break the schema of mailpulse.events.v1 were sent to the dead-letter topic instead of "
            "being counted.",
        ),
        (
            "MailpulseApiErrors",
            'sum by (instance) (rate(mailpulse_api_requests_total{status=~"5.."}[5m])) > 0.1',
            "10m",
            "warning",
            "the query API of {{ $labels.instance }} answers 5xx",
            "503 while recovering is expected for a few minutes after a restart; lasting 5xx is not.",
        ),
    ],
}


def _pipeline_rules(group: str, f: _Formats) -> list[dict[str, Any]]:
    out = []
    for alert, expr, hold, severity, summary, description in _PIPELINE[group]:
        rule: dict[str, Any] = {"alert": alert, "expr": expr}
        if hold:
            rule["for"] = hold
        rule["labels"] = {"severity": severity}
        rule["annotations"] = {
            "summary": summary,
            "description": description,
            "runbook_url": f"{f.text('runbook_url')}#{_anchor(alert)}",
        }
        out.append(rule)
    return out


def _render(f: _Formats) -> dict[str, Any]:
    groups = [{"name": name, "rules": _pipeline_rules(name, f)} for name in _PIPELINE]
    groups.append({"name": "mailpulse-deliverability", "rules": _deliverability_rules(f)})
    return {"groups": groups}


def render_rules(settings: AlertSettings | None = None) -> dict[str, Any]:
    return _render(_Literal(settings or AlertSettings()))


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)

_HEADER = """\
# Prometheus alert rules for mailpulse, for on-call. GENERATED: do not edit by hand.
# Regenerate with `mailpulse alerts rules > deploy/prometheus/mailpulse-alerts.yml`
# (defaults), or with your thresholds: `mailpulse alerts rules --config mailpulse.yaml`
# (the config's `alerts:` section). Load with `rule_files: [mailpulse-alerts.yml]`.
# Every alert links its section of docs/runbooks.md. Labels carry provider, source,
# stream, campaign and mailbox-provider names, never secrets or addresses.
"""


def _dump(rules: dict[str, Any]) -> str:
    return yaml.dump(rules, Dumper=_Dumper, sort_keys=False, width=120, allow_unicode=True)


def rules_yaml(settings: AlertSettings | None = None) -> str:
    return _HEADER + _dump(render_rules(settings))


_HELM_HEADER = """\
{{/*
mailpulse's alert rules for the PrometheusRule, thresholds from .Values.alerts.thresholds
(runbook links from .Values.alerts.runbookUrl).
GENERATED by `mailpulse alerts rules --helm-template` from the same generator as
deploy/prometheus/mailpulse-alerts.yml: do not edit by hand.
*/}}
"""


def helm_rules_template() -> str:
    """The chart's ``templates/_alert-rules.tpl``: a named template ``mailpulse.alertRules``."""
    refs = _HelmRefs()
    body = _dump(_render(refs))
    # Prometheus's own {{ $labels.x }} must reach the PrometheusRule as written.
    body = re.sub(r"\{\{|\}\}", lambda m: "{{ " + f'"{m.group(0)}"' + " }}", body)
    for token, expression in refs.expressions.items():
        body = body.replace(token, expression)
    return _HELM_HEADER + '{{- define "mailpulse.alertRules" -}}\n' + body + "{{- end }}\n"


def register(subparsers: Any) -> None:
    alerts = subparsers.add_parser("alerts", help="Prometheus alert rules")
    sub = alerts.add_subparsers(dest="alerts_command", required=True, metavar="ACTION")
    rules = sub.add_parser(
        "rules", help="print the alert rules (thresholds: the config's alerts: section, or defaults)"
    )
    source = rules.add_mutually_exclusive_group()
    source.add_argument("--config", help="config file whose alerts: section sets the thresholds (default: built-in)")
    source.add_argument(
        "--helm-template",
        action="store_true",
        help="print the Helm chart's templates/_alert-rules.tpl (thresholds read from the chart's values)",
    )
    rules.set_defaults(func=_print_rules)


def _print_rules(args: Any) -> int:
    if args.helm_template:
        print(helm_rules_template(), end="")
        return 0
    settings = AlertSettings()
    if args.config:
        from mailpulse.config import load_config  # the config imports this module: load it only when asked

        settings = load_config(args.config).alerts
    print(rules_yaml(settings), end="")
    return 0
