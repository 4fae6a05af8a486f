"""The aiohttp application: wires storage, the pipeline, the channels and the delivery worker."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bot.channels import provider_channels, simulator
from bot.clock import Clock, Randomness, SystemClock, SystemRandomness
from bot.config import Config, simulator_on
from bot.content import ContentReport, check_content
from bot.flows.loader import FlowError
from bot.front_process import FrontProcess, FrontSockets
from bot.health import Health, WatchedSender
from bot.http_limits import IP_LIMITERS, limit_per_ip
from bot.i18n import normalise
from bot.intake import Intake
from bot.keys import BOT, DATABASE, INTAKE, SIMULATOR
from bot.messages import Inbound, Reply
from bot.metrics import Metrics
from bot.outbox import Delivery, Lookup, Sender
from bot.pipeline import Pipeline, PipelineSettings
from bot.runtime import quiet_libraries
from bot.security import open_store, sealer_for
from bot.staff import EscalationTimer, Staff, StaffSettings
from bot.store.sqlite import Database, Pending, Store
from bot.triage import Triage

log = logging.getLogger(__name__)


@dataclass
class Bot:
    """Everything a running helpline holds, shared by the HTTP server and ``helpline chat``."""

    config: Config
    content: ContentReport
    database: Database
    pipeline: Pipeline
    intake: Intake
    delivery: Delivery
    metrics: Metrics
    simulator: simulator.SimulatorSender
    channels: list
    escalations: EscalationTimer
    health: Health
    front: FrontProcess | None = None  # webhooks and providers' senders, when they have a process of their own

    async def start(self) -> None:
        """Start everything; a provider's channel is set up in the background (:class:`Health`), so one that is
        down or refuses its credentials holds up nothing else."""
        await self.database.open()
        self.intake.start()
        for channel in self.channels:
            await channel.start_sending()
            self.health.set_up(channel.name, channel.set_up, channel.settings)
        if self.front is not None:
            self.front.start()
        self.delivery.start()
        self.escalations.start()

    async def stop(self) -> None:
        """Finish the messages already taken, flush the outbox briefly, close the database."""
        if self.front is not None:
            await self.front.close()  # it stops listening once the webhooks it is reading are stored
        await self.escalations.stop()
        await self.intake.close()
        await self.delivery.stop(flush_seconds=5.0)
        if self.front is not None:
            await self.front.stop()
        await self.health.stop()
        for channel in self.channels:
            await channel.close()
        await self.database.close()


def load_content(config: Config) -> ContentReport:
    """The checked content; raises :class:`FlowError` listing every error so the bot never starts broken."""
    report = check_content(config)
    if not report.ok:
        raise FlowError(report.errors)
    return report


def build_bot(config: Config, *, clock: Clock | None = None, randomness: Randomness | None = None,
              senders: dict[str, Sender] | None = None, content: ContentReport | None = None,
              front: FrontSockets | None = None) -> Bot:
    """Everything wired. With ``front`` (as `helpline serve` runs), the webhooks are read and the providers'
    senders run in a process of their own (:mod:`bot.front_process`); else in this one (tests, `helpline chat`)."""
    quiet_libraries()
    clock = clock or SystemClock()
    content = content or load_content(config)
    assert content.flows is not None and content.catalogs is not None
    metrics = Metrics()
    health = Health(clock)
    sealer = sealer_for(config, create=True)
    database = Database(lambda: open_store(config, sealer))  # refuses a key that is not this database's
    staff = Staff(StaffSettings.from_config(config), content.catalogs)
    pipeline = Pipeline(content.flows, content.catalogs, clock, randomness or SystemRandomness(),
                        PipelineSettings(config.session.idle_minutes, config.sms.segment_budget,
                                         config.security.messages_per_minute, config.sms.part_grace_seconds,
                                         frozenset(normalise(word) for word in config.sms.opt_out_words)),
                        staff=staff,
                        triage=Triage(content.lexicon))
    sim = simulator.SimulatorSender()
    providers = provider_channels(config)
    channels: list = list(providers.values())
    all_senders: dict[str, Sender] = {"simulator-sms": sim, "simulator-telegram": sim}
    front_process = None
    if front is not None:
        front_process = FrontProcess(config, frozenset(providers), metrics, front)
        all_senders.update({name: WatchedSender(name, front_process.sender(name), health) for name in providers})
    else:
        all_senders.update({name: WatchedSender(name, channel, health) for name, channel in providers.items()})
    all_senders.update(senders or {})

    async def sent(pending: Pending) -> None:
        metrics.messages_out.labels(pending.channel).inc()
        health.delivered(pending.channel)
        if pending.channel in simulator.CHANNELS.values():
            await sim.changed(pending.message_id)

    async def failed(pending: Pending, reason: str) -> None:
        metrics.send_failures.labels(pending.channel).inc()
        if pending.body.get("case") and not pending.body.get("staff"):
            await database.call(staff.delivery_failed, pending.body, reason, clock.now())
            delivery.wake()

    # The server's own provider clients (started with the bot) ask Twilio about sends in doubt, also when the
    # sends themselves go through the front.
    lookups = {name: channel for name, channel in providers.items() if isinstance(channel, Lookup)}
    delivery = Delivery(database, all_senders, clock, on_sent=sent, on_failed=failed, lookups=lookups,
                        health=health)
    health.on_usable = delivery.wake

    def committed(results: list[tuple[Inbound, Reply, float]]) -> None:
        now = time.perf_counter()
        for inbound, reply, started in results:
            if reply.duplicate:
                metrics.duplicates.labels(inbound.channel).inc()
                continue
            metrics.messages_in.labels(inbound.channel).inc()
            metrics.pipeline_seconds.observe(now - started)
        delivery.wake()
        if any(inbound.channel in simulator.CHANNELS.values() for inbound, _, _ in results):
            asyncio.get_running_loop().create_task(sim.changed())

    intake = Intake(database, pipeline, on_committed=committed)
    if "telegram" in providers:
        providers["telegram"].intake = intake
    if front_process is not None:
        front_process.enqueue = intake.enqueue
    escalations = EscalationTimer(database, staff, clock, on_queued=delivery.wake, release_held=pipeline.release_held)
    return Bot(config, content, database, pipeline, intake, delivery, metrics, sim, channels, escalations, health,
               front_process)


def create_app(config: Config, **kwargs) -> web.Application:
    """The HTTP application. ``kwargs`` go to :func:`build_bot` (a clock, randomness, senders for tests)."""
    bot = build_bot(config, **kwargs)
    app = web.Application(client_max_size=64 * 1024, middlewares=[limit_per_ip])
    app[IP_LIMITERS] = {}
    app[BOT] = bot
    app[INTAKE] = bot.intake
    app[DATABASE] = bot.database
    app[SIMULATOR] = bot.simulator

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await bot.start()
        retention = asyncio.create_task(daily_retention(bot), name="helpline-retention")
        log.info("helpline ready: database %s, languages %s", config.storage.database,
                 ", ".join(bot.pipeline.catalogs.languages))
        yield
        retention.cancel()
        await bot.stop()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    if simulator_on(config):
        app.router.add_routes(simulator.routes())
        app.router.add_get("/", home)
    for channel in bot.channels:
        app.router.add_routes(channel.routes())
    return app


async def daily_retention(bot: Bot, first_delay: float = 60.0) -> None:
    """Retention inside `serve`: a minute after start, then every 24 hours."""
    await asyncio.sleep(first_delay)
    while True:
        cutoff = bot.pipeline.clock.now() - timedelta(days=bot.config.security.retention_days)
        try:
            counts = await bot.database.call(Store.purge, cutoff)
            log.info("retention: %s", counts)
        except Exception:
            log.exception("retention failed; trying again tomorrow")
        await asyncio.sleep(24 * 3600)


async def home(request: web.Request) -> web.Response:
    raise web.HTTPFound("/simulator")


async def healthz(request: web.Request) -> web.Response:
    """200 while the database answers and the outbox moves; 503 if either fails. A provider's channel that
    is failing shows in ``channels`` but is no 503: a load balancer would take the other channels down with it."""
    bot = request.app[BOT]
    channels = bot.health.shown()
    try:
        backlog, oldest_due = await bot.database.call(_health, sorted(bot.delivery.senders), bot.health.clock.now())
    except Exception as error:
        log.error("health check failed: %s", error)
        return web.json_response({"ok": False, "database": "unavailable", "channels": channels}, status=503)
    trouble = bot.health.outbox_trouble(oldest_due)
    outbox = {"state": "ok"} if trouble is None else {"state": "stuck", "reason": trouble}
    return web.json_response({"ok": trouble is None, "database": "ok", "outbox_backlog": backlog, "outbox": outbox,
                              "channels": channels}, status=200 if trouble is None else 503)


def _health(store: Store, channels: list[str], now: datetime) -> tuple[int, dict[str, datetime]]:
    store.ping()
    due = {channel: datetime.fromisoformat(at) for channel, at in store.oldest_due(channels).items()}
    return store.backlog(), {channel: at for channel, at in due.items() if at <= now}


async def metrics(request: web.Request) -> web.Response:
    bot = request.app[BOT]
    for name, channel in bot.health.channels.items():
        bot.metrics.channel_up.labels(name).set(1 if channel.state == "ok" else 0)
    try:
        bot.metrics.outbox_backlog.set(await bot.database.call(Store.backlog))
    except Exception as error:
        log.error("metrics: cannot read the outbox backlog: %s", error)
    body = generate_latest(bot.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
