"""The ``helpline`` command."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import sys
import tempfile

import click

from bot.config import Config, ConfigError, load_config
from bot.flows.loader import FlowError

CHAT_ADDRESS = "+10000000001"
STATUS_CHOICES = ["new", "acknowledged", "in_progress", "referred", "resolved", "closed"]
CONFIG_HELP = "TOML config file (see config.example.toml). Without it: defaults, simulator only."


def _config(path: str | None) -> Config:
    try:
        return load_config(path)
    except ConfigError as error:
        click.echo(f"config error: {error}", err=True)
        sys.exit(2)


def _database_folder(config: Config) -> None:
    """A database path in a folder that does not exist is a typo far more often than a wish: say so, make
    nothing (neither the folder, nor a database, nor a key file)."""
    folder = os.path.dirname(os.path.abspath(config.storage.database))
    if not os.path.isdir(folder):
        click.echo(f"error: the folder of the database {config.storage.database!r} ([storage] database) does not "
                   f"exist: create {folder} first, or fix the path", err=True)
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

    from bot.app import create_app, load_content
    from bot.front_process import FrontSockets, bind
    from bot.redact import scrub_logs
    from bot.runtime import event_loop
    from bot.security import DataKeyError, load_key, open_store

    config = _config(config_path)
    _database_folder(config)
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    scrub_logs()  # tracebacks and library errors may quote a number or a token
    try:
        _key, where = load_key(config, create=True)  # made only for a new database
    except (DataKeyError, OSError) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    except sqlite3.Error as error:
        click.echo(f"error: cannot open the database {config.storage.database!r} ([storage] database): {error}",
                   err=True)
        sys.exit(2)
    if where.endswith("(new)"):
        click.echo(f"helpline: no data key was configured, so a new one was made in {where[:-6]} (owner-only, 0600). "
                   "Keep it safe and apart from database backups: without it the data cannot be read.", err=True)
    try:
        content = load_content(config)  # before anything is made on disk
    except FlowError as error:
        for problem in error.problems:
            click.echo(f"error: {problem}", err=True)
        click.echo("the flows or catalogs are broken; fix them (see `helpline flows check`) and start again", err=True)
        sys.exit(1)
    lock = _single_instance(config.storage.database, f"error: another `helpline serve` is already using "
                            f"{config.storage.database}; stop it first (two would answer every message twice)")
    try:
        open_store(config).close()  # opens, migrates, checks the key: a bad path or a wrong key is a clear error
    except DataKeyError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    except (sqlite3.Error, OSError) as error:
        click.echo(f"error: cannot open the database {config.storage.database!r} ([storage] database): {error}",
                   err=True)
        sys.exit(2)
    try:
        public = bind(config.server.host, config.server.port)
    except OSError as error:
        click.echo(f"error: cannot listen on {config.server.host}:{config.server.port} ([server] host and port): "
                   f"{error.strerror or error}", err=True)
        sys.exit(2)
    private = tempfile.TemporaryDirectory(prefix="helpline-")  # owner-only: the server's socket, for the front
    sockets = FrontSockets(public, os.path.join(private.name, "server.sock"))
    app = create_app(config, front=sockets, content=content)
    where = f"http://{config.server.host}:{config.server.port}"
    _announce(config, where)
    try:
        web.run_app(app, path=sockets.server_path, print=None, shutdown_timeout=10.0, loop=event_loop())
    finally:
        for listener in public:
            listener.close()
        private.cleanup()
        os.close(lock)  # only now: the database is closed (see _single_instance)


def _announce(config: Config, where: str) -> None:
    """The start banner, and once, plainly, what would leave a worker in danger unheard or let anyone in."""
    from bot.config import real_channels, simulator_on

    real = real_channels(config)
    if not simulator_on(config):
        why = f": {' and '.join(real)} configured; [server] simulator = true turns it on" if real else ""
        click.echo(f"helpline: serving on {where} (simulator off{why})", err=True)
    elif real:
        click.echo(f"helpline: serving on {where}", err=True)
        click.echo(f"helpline: WARNING: the simulator is ON at {where}/simulator while {' and '.join(real)} "
                   "is configured ([server] simulator = true): anyone who reaches this address can play a worker "
                   "and open cases. Its cases are marked simulated and never page on-call. Turn it off for "
                   "production: simulator = false (or leave the key out).", err=True)
    else:
        click.echo(f"helpline: serving on {where} (simulator: {where}/simulator)", err=True)
    escalation = config.escalation
    if not escalation.telegram_chat_id and not escalation.oncall_numbers:
        click.echo("helpline: WARNING: no staff group ([escalation] telegram_chat_id) and no on-call numbers "
                   "([escalation] oncall_numbers) are set: a worker in danger gets the emergency numbers, but no "
                   "person is told (and the worker is told so). Set at least one.", err=True)
    elif escalation.telegram_chat_id and "Telegram" not in real:
        click.echo("helpline: WARNING: [escalation] telegram_chat_id is set but [telegram] token is not: staff "
                   "alerts wait in the outbox until Telegram is configured.", err=True)
    if escalation.oncall_numbers and "Twilio" not in real:
        click.echo("helpline: WARNING: [escalation] oncall_numbers are set but Twilio is not configured: on-call "
                   "pages wait in the outbox until it is.", err=True)


def _single_instance(database: str, busy: str, create: bool = True) -> int:
    """Take an exclusive lock on the database file, for as long as `serve` (or `rotate-key`) runs: a second
    `serve` would send every reply twice and race the timers, and `rotate-key` under a running `serve` would
    leave it sealing with the old key. Exits 2 with ``busy`` when another holds it. Returns the locked fd.

    The lock is flock(2) on an fd of the database file itself, so it follows the file, not the way it is
    named: a symlink, a relative path, `..` or a hard link reach the same inode, hence the same lock. (A lock
    file named after the path gave each spelling its own lock; one named after the resolved path still misses
    hard links and bind mounts.) On Linux, flock locks are apart from the POSIX (fcntl) locks SQLite takes on
    the same file (not on NFS, where SQLite's WAL does not work anyway). But closing any fd of a file drops
    all this process's POSIX locks on it, SQLite's included: so the lock is taken before SQLite opens the
    file, and its fd is closed only once SQLite has closed it (it is not inherited: the front process is
    spawned, and Python's fds are close-on-exec)."""
    import fcntl

    try:
        fd = os.open(database, os.O_RDONLY | (os.O_CREAT if create else 0) | os.O_CLOEXEC, 0o644)
    except FileNotFoundError:
        click.echo(f"error: there is no database at {database} ([storage] database)", err=True)
        sys.exit(2)
    except OSError as error:
        click.echo(f"error: cannot open the database {database!r} ([storage] database): {error.strerror or error}",
                   err=True)
        sys.exit(2)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)  # safe: SQLite has not opened the file in this process
        click.echo(busy, err=True)
        sys.exit(2)
    return fd


@main.command()
@click.option("--config", "config_path", type=click.Path(), help=CONFIG_HELP)
@click.option("--channel", type=click.Choice(["sms", "telegram"]), default="sms", show_default=True,
              help="Which channel to play: replies are shown as that channel would show them.")
@click.option("--from", "address", default=None, help=f"The worker's address.  [default: {CHAT_ADDRESS}]")
@click.option("--new", "fresh", is_flag=True,
              help="Play a worker the bot has never met (a fresh address): the same answers on every run.")
@click.option("--language", default=None, help="The language a Telegram client would report, e.g. my.")
def chat(config_path: str | None, channel: str, address: str | None, fresh: bool, language: str | None) -> None:
    """Talk to the bot in the terminal, through the same pipeline and database as `serve`.

    Type a message and press Enter; with piped input, each line is one message:

        printf 'hi\\n2\\n1\\n' | helpline chat --new

    The bot remembers each address's conversation in the database ([storage] database, made with its key
    file on first use, and said so), so a second run from the same address goes on where the first ended.
    """
    import secrets

    from bot.chat import run_chat
    from bot.security import DataKeyError, key_file_path

    if fresh and address is not None:
        raise click.UsageError("use --new or --from, not both")
    if fresh:
        address = ("+1555" if channel == "sms" else "9") + "".join(str(secrets.randbelow(10)) for _ in range(9))
    config = _config(config_path)
    _database_folder(config)
    made = []  # only a new database gets a key made (an existing one without its key is refused)
    if not os.path.exists(config.storage.database):
        made.append(config.storage.database)
        if not config.security.data_key and not key_file_path(config).exists():
            made.append(str(key_file_path(config)))
    if made:
        click.echo(f"helpline chat: making {' and '.join(made)} (the conversation is kept there; the key file "
                   "is owner-only and needed to read it)", err=True)
    logging.basicConfig(level=logging.WARNING)
    try:
        asyncio.run(run_chat(config, channel, address or CHAT_ADDRESS, language))
    except FlowError as error:
        for problem in error.problems:
            click.echo(f"error: {problem}", err=True)
        sys.exit(1)
    except DataKeyError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        pass


@main.group()
def flows() -> None:
    """Check the conversation flows and catalogs."""


@flows.command("check")
@click.option("--config", "config_path", type=click.Path(), help=CONFIG_HELP)
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object: ok, errors, warnings, locales, messages, sources, triage.")
def flows_check(config_path: str | None, as_json: bool) -> None:
    """Validate flows, catalogs and triage word lists; exit 1 on any error.

    Reports file:line for every problem, each language's coverage and review status, the SMS cost of every
    text in every language, the sources the content cites, and the triage words of each language.
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
        if report.triage:
            click.echo(f"triage word lists: {', '.join(report.triage)}: "
                       f"{sum(info['danger_words'] for info in report.triage.values())} danger words, "
                       f"{sum(info['safe_phrases'] for info in report.triage.values())} safe phrases")
        click.echo(f"{len(report.sources)} cited sources; {len(report.errors)} error(s), "
                   f"{len(report.warnings)} warning(s)")
    sys.exit(0 if report.ok else 1)


@main.command()
@click.option("--config", "config_path", type=click.Path(), help=CONFIG_HELP)
def triage(config_path: str | None) -> None:
    """Check messages for danger: one message a line on stdin, one JSON object a line on stdout.

        printf 'they beat me\nwhat is the minimum wage\n' | helpline triage
    """
    from bot.content import triage_path
    from bot.lexicon import LexiconError, load_lexicon
    from bot.triage import Triage

    config = _config(config_path)
    try:
        checker = Triage(load_lexicon(triage_path(config)))
    except LexiconError as error:
        for problem in error.problems:
            click.echo(f"error: {problem}", err=True)
        click.echo("the triage word lists are broken; fix them (see `helpline flows check`)", err=True)
        sys.exit(2)
    for line in sys.stdin:
        text = line.rstrip("\r\n")
        result = checker.assess(text)
        click.echo(json.dumps({"text": text, "urgent": result.urgent, "category": result.category,
                               "language": result.language, "matched": result.matched}, ensure_ascii=False))


@main.group()
def cases() -> None:
    """Work cases from the command line: list, show, change status. Every view is logged."""


def _store(config_path: str | None):
    from bot.security import DataKeyError, open_store

    config = _config(config_path)
    _database_folder(config)
    try:
        return config, open_store(config)
    except DataKeyError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    except (sqlite3.Error, OSError) as error:
        click.echo(f"error: cannot open the database {config.storage.database!r}: {error}", err=True)
        sys.exit(2)


def _who(by: str | None) -> str:
    import getpass

    return f"cli:{by or getpass.getuser()}"


@cases.command("list")
@click.option("--config", "config_path", type=click.Path(), help=CONFIG_HELP)
@click.option("--status", type=click.Choice(STATUS_CHOICES), help="Only cases with this status.")
@click.option("--urgent", is_flag=True, help="Only urgent cases.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
@click.option("--by", help="Your name, for the access log (default: your login).")
def cases_list(config_path: str | None, status: str | None, urgent: bool, as_json: bool, by: str | None) -> None:
    """List cases, urgent first, newest first. No worker's phone number or words are shown here."""
    from datetime import UTC, datetime

    _config_obj, store = _store(config_path)
    found = store.cases(status=status, urgent=True if urgent else None)
    store.audit(_who(by), "list_cases", None, f"{len(found)} case(s)", datetime.now(UTC))
    for case in found:
        row = {"reference": case["reference"], "status": case["status"], "urgent": case["urgent"],
               "kind": case["kind"], "category": case["category"], "country": case["country"],
               "language": case["language"], "created_at": case["created_at"], "claimed_by": case["claimed_by"],
               "anonymous": case["contact_id"] is None and bool(case["reporter_key"]),
               "simulated": case["simulated"]}
        if as_json:
            click.echo(json.dumps(row, ensure_ascii=False))
        else:
            click.echo(f"{row['reference']}  {'URGENT ' if row['urgent'] else '       '}{row['status']:<12} "
                       f"{row['kind']:<9} {row['category'] or '-':<13} {row['country'] or '-':<5} "
                       f"{row['language'] or '-':<3} {row['created_at'][:16]}  {row['claimed_by'] or ''}"
                       + ("  (simulated: from /simulator, not a real worker)" if row["simulated"] else ""))
    store.close()


@cases.command("show")
@click.argument("reference")
@click.option("--config", "config_path", type=click.Path(), help=CONFIG_HELP)
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@click.option("--by", help="Your name, for the access log (default: your login).")
def cases_show(reference: str, config_path: str | None, as_json: bool, by: str | None) -> None:
    """Show one case: the worker's answers and every event, with who and when. The view is logged."""
    from datetime import UTC, datetime

    from bot.cases import parse_reference

    _config_obj, store = _store(config_path)
    case = store.case(parse_reference(reference) or reference)
    if case is None:
        click.echo(f"error: no case {reference}", err=True)
        sys.exit(2)
    store.audit(_who(by), "view_case", f"case:{case['reference']}", None, datetime.now(UTC))
    events = store.case_events(case["id"])
    shown = {key: case[key] for key in ("reference", "status", "urgent", "simulated", "kind", "category", "country",
                                        "language", "created_at", "updated_at", "claimed_by", "claimed_at")}
    shown.update(anonymous=case["contact_id"] is None, details=case["details"], events=events)
    if as_json:
        click.echo(json.dumps(shown, ensure_ascii=False, indent=2))
    else:
        for key, value in shown.items():
            if key not in ("details", "events"):
                click.echo(f"{key}: {value}")
        click.echo("details:")
        for key, value in case["details"].items():
            click.echo(f"  {key}: {value}")
        click.echo("events:")
        for event in events:
            detail = f" — {event['detail']}" if event["detail"] else ""
            click.echo(f"  {event['created_at'][:19]}  {event['kind']:<18} {event['actor']}{detail}")
    store.close()


@cases.command("set-status")
@click.argument("reference")
@click.argument("status", type=click.Choice(STATUS_CHOICES))
@click.option("--note", help="A message for the worker (sent as written, with the status in their language).")
@click.option("--config", "config_path", type=click.Path(), help=CONFIG_HELP)
@click.option("--by", help="Your name, recorded on the case (default: your login).")
def cases_set_status(reference: str, status: str, note: str | None, config_path: str | None, by: str | None) -> None:
    """Move a case to STATUS. The worker is told in their language if they agreed to follow-up, and only in
    the hours they said are safe (the message waits in the outbox until then; a running `serve` sends it)."""
    from datetime import UTC, datetime

    from bot.cases import parse_reference
    from bot.content import content_paths
    from bot.i18n import Catalogs
    from bot.staff import Staff, StaffSettings

    config, store = _store(config_path)
    if store.case(parse_reference(reference) or reference) is None:
        store.close()
        click.echo(f"error: no case {reference}", err=True)
        sys.exit(2)
    catalogs = Catalogs(content_paths(config)[1], config.content.default_language)
    staff = Staff(StaffSettings.from_config(config), catalogs)
    try:
        told = staff.set_status(store, parse_reference(reference) or reference, status, note, _who(by),
                                datetime.now(UTC))
    except ValueError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)
    finally:
        store.close()
    click.echo(f"{reference.upper()}: {status}; {told}")


@main.command()
@click.option("--config", "config_path", type=click.Path(), help=CONFIG_HELP)
@click.option("--dry-run", is_flag=True, help="Only count what would go.")
def purge(config_path: str | None, dry_run: bool) -> None:
    """Apply retention now ([security] retention_days; `serve` also does it daily): finished cases older than
    that become anonymous statistics, old messages and sessions go, silent contacts are deleted."""
    from datetime import UTC, datetime, timedelta

    config, store = _store(config_path)
    try:
        counts = store.purge(datetime.now(UTC) - timedelta(days=config.security.retention_days), dry_run=dry_run)
    finally:
        store.close()
    verb = "would delete" if dry_run else "deleted"
    click.echo(f"{verb}: {counts['cases']} finished case(s), {counts['messages']} message(s), "
               f"{counts['sessions']} session(s), {counts['contacts']} contact(s) older than "
               f"{config.security.retention_days} days")


@main.command()
@click.argument("target", type=click.Path(dir_okay=False))
@click.option("--config", "config_path", type=click.Path(), help=CONFIG_HELP)
def backup(target: str, config_path: str | None) -> None:
    """Copy the database to TARGET, safely while `serve` runs (SQLite online backup).

    Restore: stop `serve`, copy TARGET over the database file (removing any old -wal and -shm files beside
    it), start `serve` with the same data key.
    """
    from pathlib import Path

    if Path(target).exists():
        click.echo(f"error: {target} exists; choose a new file", err=True)
        sys.exit(2)
    if not Path(target).parent.is_dir():
        click.echo(f"error: the folder {Path(target).parent} does not exist; make it, or choose another place for "
                   "the backup", err=True)
        sys.exit(2)
    config, store = _store(config_path)
    try:
        store.backup(target)
    except (sqlite3.Error, OSError) as error:
        for left in (Path(target), Path(f"{target}-journal")):  # a half-written copy is no backup
            left.unlink(missing_ok=True)
        click.echo(f"error: cannot write the backup {target}: {error}; nothing was kept", err=True)
        sys.exit(2)
    finally:
        store.close()
    click.echo(f"backed up {config.storage.database} to {target} ({Path(target).stat().st_size} bytes); "
               "it is encrypted with the same data key, which is not in it")


@main.command("rotate-key")
@click.option("--config", "config_path", type=click.Path(), help=CONFIG_HELP)
def rotate_key(config_path: str | None) -> None:
    """Re-encrypt all personal data with a new data key. Stop `helpline serve` first.

    With a key file, the file is replaced once the database is rewritten. With a key in config or the
    environment, the new key is printed: put it there before the next start.
    """
    config = _config(config_path)
    lock = _single_instance(config.storage.database, f"error: `helpline serve` (or another `rotate-key`) is using "
                            f"{config.storage.database}; stop it first: a running serve would go on sealing new "
                            "messages with the old key, which the new key cannot open", create=False)
    try:
        _rotate_key(config_path)
    finally:
        os.close(lock)  # only now: the database is closed (see _single_instance)


def _rotate_key(config_path: str | None) -> None:
    from datetime import UTC, datetime

    from bot.security import CryptoSealer, DataKeyError, key_file_path, new_key, parse_key, rotate, write_key_file

    config, store = _store(config_path)
    fresh = new_key()
    pending = key_file_path(config).with_name(key_file_path(config).name + ".new")
    if not config.security.data_key:
        write_key_file(pending, fresh)  # first, so a crash in between never leaves data under a lost key
    try:
        counts = rotate(store, CryptoSealer(parse_key(fresh, "new key")))
        store.audit(_who(None), "rotate_key", None, json.dumps(counts), datetime.now(UTC))
    except DataKeyError as error:
        click.echo(f"error: {error}; nothing was changed", err=True)
        sys.exit(1)
    finally:
        store.close()
    if config.security.data_key:
        click.echo(f"re-encrypted {counts}. The new data key (put it in HELPLINE_SECURITY_DATA_KEY now):\n{fresh}")
    else:
        pending.replace(key_file_path(config))
        click.echo(f"re-encrypted {counts}; the new key is in {key_file_path(config)}")


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
