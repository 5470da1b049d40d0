"""Answering over the notes: settings, engine, answerers, CLI."""
