"""The ``helpline`` command."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import sys

import click

from bot.config import Config, ConfigError, load_config
from bot.flows.loader import FlowError

CONFIG_HELP = "TOML config file (see config.example.toml). Without it: defaults, simulator only."


def _config(path: str | None) -> Config:
    try:
        return load_config(path)
    except ConfigError as error:
        click.echo(f"config error: {error}", err=True)
        sys.exit(2)


@click.group()
@click.version_option(package_name="helpline-bot")
def main() -> None:
    """A helpline bot for migrant workers: rights information, complaints, and a person when in danger.

    Start with `helpline serve` and open http://127.0.0.1:8080/simulator, or talk to it here with
    `helpline chat`.
    """


@main.command()
@click.option("--config", "config_path", type=click.Path(), help=CONFIG_HELP)
@click.option("--log-level", default="INFO", show_default=True, type=click.Choice(["DEBUG", "INFO", "WARNING"]))
def serve(config_path: str | None, log_level: str) -> None:
    """Run the HTTP server: webhooks, simulator, /healthz, /metrics.

    Stops at start, with file:line, if a flow or catalog is broken. SIGTERM or Ctrl-C stops it gracefully:
    no new messages are taken, those taken are finished and the outbox is flushed (or kept for next start).
    """
    from aiohttp import web

    from bot.app import create_app
    from bot.store.sqlite import Store

    config = _config(config_path)
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        app = create_app(config)
    except FlowError as error:
        for problem in error.problems:
            click.echo(f"error: {problem}", err=True)
        click.echo("the flows or catalogs are broken; fix them (see `helpline flows check`) and start again", err=True)
        sys.exit(1)
    try:
        Store(config.storage.database).close()  # opens and migrates: a bad path is a clear error, not a traceback
    except (sqlite3.Error, OSError) as error:
        click.echo(f"error: cannot open the database {config.storage.database!r} ([storage] database): {error}",
                   err=True)
        sys.exit(2)
    click.echo(f"helpline: serving on http://{config.server.host}:{config.server.port} "
               f"(simulator: http://{config.server.host}:{config.server.port}/simulator)", err=True)
    web.run_app(app, host=config.server.host, port=config.server.port, print=None, shutdown_timeout=10.0)


@main.command()
@click.option("--config", "config_path", type=click.Path(), help=CONFIG_HELP)
@click.option("--channel", type=click.Choice(["sms", "telegram"]), default="sms", show_default=True,
              help="Which channel to play: replies are shown as that channel would show them.")
@click.option("--from", "address", default="+10000000001", show_default=True, help="The worker's address.")
@click.option("--language", default=None, help="The language a Telegram client would report, e.g. my.")
def chat(config_path: str | None, channel: str, address: str, language: str | None) -> None:
    """Talk to the bot in the terminal, through the same pipeline and database as `serve`.

    Type a message and press Enter; with piped input, each line is one message:

        printf 'hi\\n2\\n1\\n' | helpline chat
    """
    from bot.chat import run_chat

    config = _config(config_path)
    logging.basicConfig(level=logging.WARNING)
    try:
        asyncio.run(run_chat(config, channel, address, language))
    except FlowError as error:
        for problem in error.problems:
            click.echo(f"error: {problem}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        pass


@main.group()
def flows() -> None:
    """Check the conversation flows and catalogs."""


@flows.command("check")
@click.option("--config", "config_path", type=click.Path(), help=CONFIG_HELP)
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object: ok, errors, warnings, locales, messages, sources.")
def flows_check(config_path: str | None, as_json: bool) -> None:
    """Validate flows and catalogs; exit 1 on any error.

    Reports file:line for every problem, each language's coverage and review status, the SMS cost of every
    text in every language, and the sources the content cites.
    """
    from bot.content import check_content

    config = _config(config_path)
    report = check_content(config)
    if as_json:
        click.echo(json.dumps(report.as_json(), ensure_ascii=False, indent=2))
    else:
        for problem in report.errors:
            click.echo(f"error: {problem}")
        for problem in report.warnings:
            click.echo(f"warning: {problem}")
        for code, info in report.locales.items():
            click.echo(f"locale {code} ({info['name']}): {info['coverage']:.0%} translated, {info['status']}")
        click.echo(f"{len(report.sources)} cited sources; {len(report.errors)} error(s), "
                   f"{len(report.warnings)} warning(s)")
    sys.exit(0 if report.ok else 1)


@main.command()
@click.argument("texts", nargs=-1, required=True)
def segments(texts: tuple[str, ...]) -> None:
    """How many SMS segments each TEXT costs, and in which encoding, as Twilio would count it."""
    from bot.sms import segment_info

    for text in texts:
        info = segment_info(text)
        click.echo(json.dumps({"text": text, "encoding": info.encoding, "segments": info.segments},
                              ensure_ascii=False))


if __name__ == "__main__":
    main()
