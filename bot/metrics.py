"""Prometheus metrics, one registry per application (no globals, so tests can run several apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.messages_in = Counter(
            "helpline_messages_in", "Inbound messages stored, by channel", ["channel"], registry=self.registry
        )
        self.duplicates = Counter(
            "helpline_duplicates", "Inbound messages seen before (provider retries)", ["channel"],
            registry=self.registry,
        )
        self.messages_out = Counter(
            "helpline_messages_out", "Outbound messages accepted by the provider, by channel", ["channel"],
            registry=self.registry,
        )
        self.send_failures = Counter(
            "helpline_send_failures", "Outbound messages given up on, by channel", ["channel"], registry=self.registry
        )
        self.pipeline_seconds = Histogram(
            "helpline_pipeline_seconds", "From a message's arrival to its replies being committed to the outbox",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5), registry=self.registry,
        )
        self.front_restarts = Counter(
            "helpline_front_restarts", "Times the front process stopped unasked and was started again",
            registry=self.registry,
        )
        self.outbox_backlog = Gauge(
            "helpline_outbox_backlog", "Messages waiting in the outbox", registry=self.registry
        )
        self.channel_up = Gauge(
            "helpline_channel_up", "1 while a provider's channel works, 0 while it starts or fails (see /healthz)",
            ["channel"], registry=self.registry,
        )
