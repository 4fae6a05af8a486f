"""Typed keys for what the aiohttp application holds (no module-level globals)."""

from __future__ import annotations

from aiohttp import web

from bot.intake import Intake
from bot.store.sqlite import Database

INTAKE = web.AppKey("intake", Intake)
DATABASE = web.AppKey("database", Database)
BOT = web.AppKey("bot", object)  # a bot.app.Bot; typed loosely to keep channels free of the app module
SIMULATOR = web.AppKey("simulator", object)  # a bot.channels.simulator.SimulatorSender
