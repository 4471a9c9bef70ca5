"""Evaluation metrics."""
from .sequence import entity_f1, get_entities

__all__ = ["entity_f1", "get_entities"]
