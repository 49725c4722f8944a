"""The order journal (docs/JOURNAL.md): store.py writes it, reader.py reads a file of it,
chain.py reads its parts as one, records.py holds its schema and record codec, budget.py
decides which rejects are kept whole, files.py and capacity.py its files, parts and cap.
``hft-tui journal`` is journal_cli.py."""

from .chain import JournalChain, verify_journal
from .files import SUFFIX, journal_ifaces, journal_path, parts
from .store import Journal, open_journal, record_cli_change

__all__ = [
    "SUFFIX",
    "Journal",
    "JournalChain",
    "journal_ifaces",
    "journal_path",
    "open_journal",
    "parts",
    "record_cli_change",
    "verify_journal",
]
