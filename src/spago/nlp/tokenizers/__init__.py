"""Tokenizers (being written)."""
