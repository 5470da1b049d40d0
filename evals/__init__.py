"""Answer-quality evaluation."""
