"""Transformer models (being written)."""
