"""The order journal (docs/JOURNAL.md): store.py writes it, reader.py reads it,
records.py holds its schema and record codec.  ``hft-tui journal`` is journal_cli.py."""

from .store import SUFFIX, Journal, journal_ifaces, journal_path, open_journal, record_cli_change

__all__ = ["SUFFIX", "Journal", "journal_ifaces", "journal_path", "open_journal", "record_cli_change"]
