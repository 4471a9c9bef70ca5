"""The package version, in a module of its own so that the disk cache and serialization read it without
importing the package root."""
__version__ = "0.1.0"
