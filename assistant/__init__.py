"""The domain: answering questions over the notes, with citations — and the edges that expose it.

Domain modules: ``settings``, ``engine`` (components wired once), ``service``
(``Assistant``), ``answer`` / ``citations``, ``abstain`` and its ``calibration``, ``followup``,
``answerers/`` (extractive, LLM), ``watch``. Edges: ``cli/`` and ``web/``; the
process ``bootstrap`` their entry points call first.
"""

__all__ = [
    "abstain", "answer", "answerers", "bootstrap", "calibration", "citations", "cli", "engine", "errors", "followup", "service",
    "settings", "watch", "web",
]
