"""Registers kosmos-genai with the platform (entry point group `kosmos.plugins`)."""

from kosmos.platform.plugins import Plugin

plugin = Plugin(name="genai")
