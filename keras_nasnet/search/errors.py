"""Errors of the search. Library code raises them; ``python -m keras_nasnet.search`` turns them
into a message and an exit code."""


class SearchError(Exception):
    """A search cannot start or go on; the message says why and what to do."""


class ConfigMismatch(SearchError):
    """An existing ``--out`` holds a search with another configuration."""


class JournalCorrupt(SearchError):
    """``trials.jsonl`` is damaged somewhere other than a cut last line."""


class SearchFailed(SearchError):
    """Too many children in a row failed: the setup, not the architectures, is broken."""


class InvalidSettings(SearchError, ValueError):
    """The search's settings cannot work (a bad value, a combination that cannot run, data too
    small for them); raised before anything is written. The command line exits with 2."""


class StateCorrupt(SearchError):
    """A file of the search folder (``config.json``, ``strategy.npz``, ``supernet.npz``) cannot be
    read; the message names it and what to do."""


class NotASearch(SearchError, FileNotFoundError):
    """A path that holds no search (no ``config.json``): a wrong path, not a damaged search."""
