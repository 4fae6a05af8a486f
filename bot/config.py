"""Configuration: a TOML file read into frozen dataclasses.

Every key may be overridden by an environment variable ``HELPLINE_<SECTION>_<KEY>`` (for secrets such as
``HELPLINE_TWILIO_AUTH_TOKEN``). Unknown keys, wrong types and missing files raise :class:`ConfigError`,
whose message names the file, the key and what is expected.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(Exception):
    """The configuration cannot be used; the message says where and what to do."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = ""
    simulator: bool | None = None  # None ("auto"): on only when neither Twilio nor Telegram is configured


@dataclass(frozen=True, slots=True)
class StorageConfig:
    database: str = "helpline.db"


@dataclass(frozen=True, slots=True)
class TwilioConfig:
    account_sid: str = ""
    auth_token: str = ""
    from_number: str = ""
    messaging_service_sid: str = ""
    api_base_url: str = ""


@dataclass(frozen=True, slots=True)
class TelegramConfig:
    token: str = ""
    mode: str = "webhook"
    webhook_secret: str = ""
    api_base_url: str = ""
    messages_per_second: int = 30


@dataclass(frozen=True, slots=True)
class ContentConfig:
    flows: str = ""
    locales: str = ""
    triage: str = ""
    default_language: str = "en"


@dataclass(frozen=True, slots=True)
class EscalationConfig:
    telegram_chat_id: int = 0
    oncall_numbers: tuple[str, ...] = ()
    claim_timeout_minutes: int = 10
    oncall_pages_per_case: int = 3
    oncall_pages_per_hour: int = 10


@dataclass(frozen=True, slots=True)
class SessionConfig:
    idle_minutes: int = 60


@dataclass(frozen=True, slots=True)
class SmsConfig:
    segment_budget: int = 3
    part_grace_seconds: int = 3
    opt_out_words: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SecurityConfig:
    data_key: str = ""
    key_file: str = ""
    retention_days: int = 365
    messages_per_minute: int = 20


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    twilio: TwilioConfig = field(default_factory=TwilioConfig)
    telegram: TelegramConfig = field(default_factory=TelegramConfig)
    content: ContentConfig = field(default_factory=ContentConfig)
    escalation: EscalationConfig = field(default_factory=EscalationConfig)
    session: SessionConfig = field(default_factory=SessionConfig)
    sms: SmsConfig = field(default_factory=SmsConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    source: str = "defaults"

    def replace(self, **sections: Any) -> Config:
        """A copy with some keys changed, e.g. ``replace(storage={"database": "x.db"})``."""
        changed = {
            name: dataclasses.replace(getattr(self, name), **values) for name, values in sections.items()
        }
        return dataclasses.replace(self, **changed)


_CHOICES = {("telegram", "mode"): ("webhook", "polling")}
_AT_LEAST_ONE = {("telegram", "messages_per_second"), ("sms", "segment_budget"), ("security", "messages_per_minute"),
                 ("session", "idle_minutes"), ("escalation", "claim_timeout_minutes"),
                 ("escalation", "oncall_pages_per_case"), ("escalation", "oncall_pages_per_hour")}
AUTO = "auto"  # a switch left to the helpline: ``[server] simulator``
SWITCH_HINT = f' (or "{AUTO}", the default: on only when neither Twilio nor Telegram is configured)'


def real_channels(config: Config) -> list[str]:
    """The providers configured (the same test as :func:`bot.channels.provider_channels`), by name."""
    found = []
    if config.twilio.account_sid and config.twilio.auth_token:
        found.append("Twilio")
    if config.telegram.token:
        found.append("Telegram")
    return found


def simulator_on(config: Config) -> bool:
    """Whether /simulator is served: as set, or (not set) only when no real channel is configured, so a
    production helpline never opens a door for anyone to play a worker by default."""
    if config.server.simulator is not None:
        return config.server.simulator
    return not real_channels(config)


def load_config(path: str | os.PathLike[str] | None = None, environ: typing.Mapping[str, str] | None = None) -> Config:
    """Read ``path`` (or the defaults when None), then apply ``HELPLINE_*`` overrides from ``environ``."""
    environ = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    where = "defaults"
    if path is not None:
        where = str(path)
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{where}: no such config file (copy config.example.toml to start)") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{where}: not valid TOML: {error}") from None
        except RecursionError:
            raise ConfigError(f"{where}: not valid TOML: nested too deeply") from None
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"{where}: cannot be read: {error}") from None
    sections: dict[str, Any] = {}
    for section_field in dataclasses.fields(Config):
        if section_field.name == "source":
            continue
        sections[section_field.name] = _section(section_field, raw.pop(section_field.name, {}), where, environ)
    if raw:
        unknown = ", ".join(sorted(raw))
        known = ", ".join(f"[{f.name}]" for f in dataclasses.fields(Config) if f.name != "source")
        raise ConfigError(f"{where}: unknown section or key {unknown} (known sections: {known})")
    return Config(**sections, source=where)


def _section(section_field: dataclasses.Field, values: Any, where: str, environ: typing.Mapping[str, str]) -> Any:
    name = section_field.name
    cls = section_field.default_factory  # type: ignore[misc]
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: [{name}] must be a table of keys")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in values:
        if key not in known:
            raise ConfigError(
                f"{where}: unknown key {key!r} in [{name}] (known keys: {', '.join(sorted(known))})"
            )
    kwargs: dict[str, Any] = {}
    for key in known:
        env_name = f"HELPLINE_{name.upper()}_{key.upper()}"
        if key in values:
            kwargs[key] = _check_type(values[key], hints[key], f"{where}: [{name}] {key}")
            label = f"{where}: [{name}] {key}"
        if env_name in environ:
            kwargs[key] = _from_env(environ[env_name], hints[key], env_name)
            label = f"environment {env_name}"
        if key not in kwargs:
            continue
        allowed = _CHOICES.get((name, key))
        if allowed and kwargs[key] not in allowed:
            raise ConfigError(f"{label} must be one of {', '.join(allowed)}, not {kwargs[key]!r}")
        if (name, key) in _AT_LEAST_ONE and kwargs[key] < 1:
            raise ConfigError(f"{label} must be 1 or more, not {kwargs[key]!r}")
        if (name, key) == ("server", "port") and not 1 <= kwargs[key] <= 65535:
            raise ConfigError(f"{label} must be a port number from 1 to 65535, not {kwargs[key]!r}")
    return cls(**kwargs)


def _check_type(value: Any, hint: Any, label: str) -> Any:
    if hint == bool | None:
        if value == AUTO:
            return None
        if not isinstance(value, bool):
            raise ConfigError(f"{label} must be true or false, not {value!r}{SWITCH_HINT}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{label} must be true or false, not {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{label} must be a whole number, not {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{label} must be a string in quotes, not {value!r}")
        return value
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f'{label} must be a list of strings, e.g. ["+6512345678"], not {value!r}')
        return tuple(value)
    raise ConfigError(f"{label}: unsupported type")  # pragma: no cover - a programming error


def _from_env(text: str, hint: Any, env_name: str) -> Any:
    if hint == bool | None and text.strip().lower() in (AUTO, ""):
        return None
    if hint in (bool, bool | None):
        answer = {"true": True, "1": True, "yes": True, "on": True,
                  "false": False, "0": False, "no": False, "off": False}.get(text.strip().lower())
        if answer is None:
            hint_text = SWITCH_HINT if hint == bool | None else ""
            raise ConfigError(f"environment {env_name} must be true or false, not {text!r}{hint_text}")
        return answer
    if hint is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"environment {env_name} must be a whole number, not {text!r}") from None
    if typing.get_origin(hint) is tuple:
        text = text.strip()
        if text.startswith("["):
            try:
                return _check_type(json.loads(text), hint, f"environment {env_name}")
            except (json.JSONDecodeError, RecursionError):
                raise ConfigError(f'environment {env_name} must be a JSON list, e.g. ["+6512345678"]') from None
        return tuple(part.strip() for part in text.split(",") if part.strip())
    return text
