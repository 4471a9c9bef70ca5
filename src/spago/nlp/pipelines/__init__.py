"""Task pipelines (being written)."""
