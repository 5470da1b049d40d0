"""The web edge: routes, the Gradio tabs, rendering and sanitizing, the note viewer, access rules.

``app.build_app`` assembles them; nothing here is imported by the domain.
"""

__all__ = [
    "access", "assets", "chat_state", "chat_tab", "context", "evals_tab", "gate", "index_tab", "render", "routes",
    "sanitize", "security", "ui", "viewer",
]
