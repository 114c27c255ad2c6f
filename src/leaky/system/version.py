"""The installed leaky's version: part of every run's id, and shown by every report.

Examples:
    >>> isinstance(__version__, str)
    True
"""

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("leaky")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
