"""FireAct Studio core: records, store, formats, lints and the work behind every page and command."""

__version__ = "0.1.0"
