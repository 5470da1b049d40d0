"""The text that represents a chunk for embedding and BM25 (no heavy imports: used on the query path)."""

__all__ = ["embed_text"]


def embed_text(heading: str, text: str) -> str:
    """Heading path on the first line, then the chunk's lines.

    >>> embed_text("Lambda > Inside VPC", "- needs a NAT gateway")
    'Lambda > Inside VPC\\n- needs a NAT gateway'
    """
    return f"{heading}\n{text}" if heading else text
