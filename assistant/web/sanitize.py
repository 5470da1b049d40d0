"""HTML sanitizing: the allow-list every fragment from a note or a model passes before it reaches a page.

``nh3`` cleans against it: no ``script``/``style``/``iframe``/``img``, no ``on*``
attributes, only our own ``na-*`` class names, links only ``http(s)``/``mailto``
or relative (opened in a new tab, ``noopener noreferrer``). Gradio's own
sanitizer stays on as a second lock.
"""

from __future__ import annotations

from functools import lru_cache

import nh3

__all__ = ["ALLOWED_TAGS", "sanitize_html"]

ALLOWED_TAGS = frozenset({
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "details", "div", "dl", "dt", "em", "h1", "h2",
    "h3", "h4", "h5", "h6", "hr", "i", "kbd", "li", "ol", "p", "pre", "s", "small", "span", "strong", "sub",
    "summary", "sup", "table", "tbody", "td", "th", "thead", "tr", "ul", "button",
})
_ATTRIBUTES = {
    "a": {"href", "title"},
    "abbr": {"title"},
    "span": {"title"},
    "ol": {"start"},
    "th": {"align"},
    "td": {"align"},
    "button": {"type", "title"},
}
# ``class`` is allowed only through this map: only our own class names survive, so a note or a
# model cannot style its text into looking like one of our notices.
_CLASSES = {
    "a": {"na-cite", "na-src"},
    "span": {"na-path", "na-loc", "na-score", "na-muted"},
    "div": {"na-answer", "na-body", "na-note", "na-warn", "na-searched", "na-quote", "na-error", "na-search",
            "na-foot", "na-hit", "na-pending", "na-worst"},
    "details": {"na-sources"},
    "button": {"na-copy"},
}
_URL_SCHEMES = {"http", "https", "mailto"}


@lru_cache(maxsize=1)
def _cleaner() -> nh3.Cleaner:
    return nh3.Cleaner(
        tags=set(ALLOWED_TAGS),
        clean_content_tags={"script", "style", "iframe", "object", "embed", "template", "noscript", "svg", "math"},
        attributes={tag: set(attrs) for tag, attrs in _ATTRIBUTES.items()},
        allowed_classes={tag: set(names) for tag, names in _CLASSES.items()},
        url_schemes=set(_URL_SCHEMES),
        link_rel="noopener noreferrer",
        set_tag_attribute_values={"a": {"target": "_blank"}},
        strip_comments=True,
    )


def sanitize_html(fragment: str) -> str:
    """Clean an HTML fragment against the allow-list.

    >>> sanitize_html('<a href="javascript:alert(1)" onclick="x()">hi</a><script>alert(1)</script>')
    '<a target="_blank" rel="noopener noreferrer">hi</a>'
    """
    return _cleaner().clean(fragment)
