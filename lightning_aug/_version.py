"""The package version, importable from every layer."""

__version__ = "0.3.0"
