"""Channels translate a provider's wire format into :class:`~bot.messages.Inbound` and send outbox messages."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.channels.telegram import TelegramChannel
    from bot.channels.twilio_sms import TwilioChannel
    from bot.config import Config


def provider_channels(config: Config) -> dict[str, TwilioChannel | TelegramChannel]:
    """The providers configured, by channel name."""
    from bot.channels.telegram import TelegramChannel
    from bot.channels.twilio_sms import TwilioChannel

    channels: dict[str, TwilioChannel | TelegramChannel] = {}
    if config.twilio.account_sid and config.twilio.auth_token:
        channels["sms"] = TwilioChannel(config.twilio, config.server.public_url)
    if config.telegram.token:
        channels["telegram"] = TelegramChannel(config.telegram, config.server.public_url,
                                               config.escalation.telegram_chat_id)
    return channels
