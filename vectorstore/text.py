"""The text that represents a chunk (or an answer unit) for embedding and BM25.

One formula, one home: chunks, answer units and the BM25 index all use
``embed_text``. No heavy imports: used on the query path.
"""

__all__ = ["embed_text", "embed_text_of"]


def embed_text(heading: str, text: str) -> str:
    """Heading path on the first line, then the lines (no heading line when there is none).

    >>> embed_text("Lambda > Inside VPC", "- needs a NAT gateway")
    'Lambda > Inside VPC\\n- needs a NAT gateway'
    >>> embed_text("", "text before the first heading")
    'text before the first heading'
    """
    return f"{heading}\n{text}" if heading else text


def embed_text_of(document) -> str:
    """``embed_text`` of a chunk ``Document`` (its ``heading`` metadata and its lines)."""
    return embed_text(document.metadata.get("heading", ""), document.page_content)
