"""The errors a user sees: one base type, one line each.

Every error whose text is meant for the user as it is derives from
:class:`HftError`, so the CLI and the app catch that one type and print its
one line; anything else is a bug and is reported as an internal error.  The
types say where the problem is; none is a kind of another unless it truly is
(a journal that cannot be written is not an engine failure).
"""

from __future__ import annotations


class HftError(Exception):
    """An error whose text is the one line the user sees."""


class ConfigError(HftError, ValueError):
    """A configuration value that may not reach the kernel."""


class ProtocolError(HftError, ValueError):
    """A payload or a value that does not follow the wire protocol."""


class SymbolError(ConfigError, ProtocolError):
    """A symbol name that is not 1..8 of letters, digits, '.', '-' (bad config and bad protocol alike)."""


class PathError(HftError, ValueError):
    """A name that may not be used to build a path (an interface name)."""


class MapsError(HftError):
    """The engine's maps cannot be opened or are of another version."""


class NetlinkFailure(HftError):
    """An attach, detach or query that the kernel refused."""


class EngineError(HftError):
    """Anything that stops an engine operation."""


class LabError(HftError):
    """The lab (namespace, veth pair) cannot be made, found or used."""


class JournalError(HftError):
    """A journal that cannot be opened, read or written."""


class SimulatorError(HftError):
    """A reason the exchange simulator cannot run."""
