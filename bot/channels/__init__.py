"""Channels translate a provider's wire format into :class:`~bot.messages.Inbound` and send outbox messages."""
