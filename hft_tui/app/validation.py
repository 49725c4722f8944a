"""Input validators built on hft_tui.config: the one set of rules.

The editor never has rules of its own: every keystroke runs the same
validator the CLI and the TOML loader run, over the values the kernel holds
now, and shows its ConfigError text beside the field.
"""

from __future__ import annotations

from collections.abc import Callable

from textual.validation import ValidationResult, Validator

from ..config import EngineParams, SymbolParams, engine_params, symbol_params
from ..errors import ConfigError, PathError, ProtocolError


class ConfigValidator(Validator):
    """Valid when ``check(text)`` does not raise a ConfigError."""

    def __init__(self, check: Callable[[str], object]) -> None:
        super().__init__()
        self.check = check

    def validate(self, value: str) -> ValidationResult:
        try:
            self.check(value)
        except (ConfigError, ProtocolError, PathError) as exc:
            return self.failure(str(exc))
        return self.success()


def symbol_value_validator(name: str, key: str, base: SymbolParams | None) -> ConfigValidator:
    return ConfigValidator(lambda text: symbol_params(name, {key: text}, base=base))


def engine_value_validator(key: str, base: EngineParams) -> ConfigValidator:
    def check(text: str):
        if key == "mode":
            raise ConfigError("engine: mode cannot change while attached (detach and attach again)")
        return engine_params({key: text}, base=base)

    return ConfigValidator(check)


def new_symbol_values(name: str, values: dict[str, str]) -> SymbolParams:
    """A new symbol's parameters (defaults for what is left empty); raises ConfigError."""
    return symbol_params(name.strip(), {k: v for k, v in values.items() if v.strip()})
