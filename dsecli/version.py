"""The version of dsecli (pyproject.toml states the same number)."""

__version__ = "0.1.0"
