"""Strategy parameters: per-symbol and engine-wide tables and the edit line.

Keys: arrows move, Enter edits the cell, Enter applies, Escape discards,
n adds a symbol, x removes one.  The pane owns parameter editing: it writes
through the session it is given and shows what the map holds now; a failure
that is not about one field goes to the app as a Failed message.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Input, Label

from ...config import ENGINE_KEYS, SYMBOL_KEYS
from ..dialogs import AddSymbolScreen, ConfirmScreen
from ..formatting import one_line, param_value
from ..labels import MessageLine, PaneTitle
from ..messages import Failed
from ..model import EngineView
from ..session import USER_ERRORS, Session
from ..validation import ConfigValidator, engine_value_validator, symbol_value_validator
from .table_sync import sync_rows

SYMBOL_COLUMNS = ["symbol", *SYMBOL_KEYS]
# Short headers so all thirteen parameters fit a 160-column terminal; the
# edit line names the full key.
HEADERS = {
    "enabled": "on",
    "buy_target": "buy",
    "sell_target": "sell",
    "base_qty": "base qty",
    "scale_qty": "scale",
    "tick_size": "tick",
    "max_order_qty": "max order",
    "max_position": "max pos",
    "collar_bps": "collar bp",
    "reference_price": "ref price",
    "rate_per_sec": "rate/s",
    "max_notional": "max notional",
}
ENGINE_ROWS = list(ENGINE_KEYS)


class SymbolParamsTable(DataTable):
    BINDINGS = [
        Binding("n", "add_symbol", "Add symbol", id="add-symbol"),
        Binding("delete,x", "remove_symbol", "Remove symbol", id="remove-symbol"),
    ]

    @dataclass
    class AddSymbol(Message):
        pass

    @dataclass
    class RemoveSymbol(Message):
        symbol: str

    DEFAULT_CSS = """
    SymbolParamsTable {
        height: auto;
    }
    """

    def on_mount(self) -> None:
        self.cursor_type = "cell"
        for key in SYMBOL_COLUMNS:
            self.add_column(HEADERS.get(key, key), key=key)

    def show(self, view: EngineView) -> None:
        rows = {}
        for s in view.symbols:
            values = s.params.__dict__
            rows[s.name] = (
                Text(s.name, style="bold"),
                *(Text(param_value(k, values[k]), justify="right") for k in SYMBOL_KEYS),
            )
        sync_rows(self, rows, SYMBOL_COLUMNS)

    def current_symbol(self) -> str | None:
        if not self.row_count:
            return None
        return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)

    def action_add_symbol(self) -> None:
        self.post_message(self.AddSymbol())

    def action_remove_symbol(self) -> None:
        name = self.current_symbol()
        if name:
            self.post_message(self.RemoveSymbol(name))


class EngineParamsTable(DataTable):
    DEFAULT_CSS = """
    EngineParamsTable {
        height: auto;
    }
    """

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.add_column("setting", key="key")
        self.add_column("value", key="value")
        self.add_column("", key="note")

    def show(self, view: EngineView) -> None:
        values = view.engine.__dict__
        rows = {
            key: (
                key,
                Text(param_value(key, values[key]), justify="right"),
                Text("fixed while attached" if key == "mode" else "", style="dim"),
            )
            for key in ENGINE_ROWS
        }
        sync_rows(self, rows, ["key", "value", "note"])


class ParamEditor(Horizontal):
    """The edit line: which field, the input (validated as typed) and the message beside it."""

    BINDINGS = [Binding("escape", "discard", "Discard edit", id="discard-edit")]
    DEFAULT_CSS = """
    ParamEditor {
        height: 3;
        margin: 1 0;
    }
    #edit-field {
        width: 28;
        padding: 1 1;
        text-style: bold;
    }
    #edit-input {
        width: 24;
    }
    """

    @dataclass
    class Apply(Message):
        """Enter on a valid value: write it to the kernel."""

        symbol: str | None  # None: an engine-wide setting
        key: str
        value: str

    @dataclass
    class Discarded(Message):
        pass

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.symbol: str | None = None
        self.key: str | None = None

    def compose(self):
        yield Label("(no field)", id="edit-field")
        yield Input(id="edit-input", disabled=True, validate_on=["changed", "submitted"])
        yield MessageLine("", id="edit-message")

    @property
    def input(self) -> Input:
        return self.query_one("#edit-input", Input)

    def begin(self, symbol: str | None, key: str, current: str, validator: ConfigValidator) -> None:
        self.symbol, self.key = symbol, key
        where = f"{symbol} {key}" if symbol else f"engine {key}"
        self.query_one("#edit-field", Label).update(where)
        inp = self.input
        inp.validators = [validator]
        inp.disabled = False
        inp.value = current
        self.set_message(f"was {current}: Enter applies, Escape discards", "info")
        inp.focus()

    def set_message(self, text: str, kind: str) -> None:
        self.query_one("#edit-message", MessageLine).show(text, kind)

    def finish(self) -> None:
        self.input.disabled = True
        self.symbol = self.key = None

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        if self.key is None or event.validation_result is None:
            return
        if event.validation_result.is_valid:
            self.set_message("valid: Enter applies, Escape discards", "info")
        else:
            self.set_message(event.validation_result.failure_descriptions[0], "error")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self.key is None:
            return
        result = event.validation_result
        if result is not None and not result.is_valid:
            self.set_message(result.failure_descriptions[0] + " (nothing written)", "error")
            return
        self.post_message(self.Apply(self.symbol, self.key, event.value.strip()))

    def action_discard(self) -> None:
        if self.key is not None:
            self.set_message(f"discarded the edit of {self.key}", "info")
            self.finish()
            self.post_message(self.Discarded())


class ParametersPane(Vertical):
    """Both tables and the editor: routes Enter on a cell to the editor, and writes
    what the editor applies, adds and removes through the session."""

    def __init__(self, session: Session, **kwargs) -> None:
        super().__init__(**kwargs)
        self.session = session
        self.view: EngineView | None = None
        self._edited_table = "#symbol-params"  # where focus goes back after an edit

    def compose(self):
        yield PaneTitle("Symbols · arrows move · Enter edits · n adds · x removes")
        yield SymbolParamsTable(id="symbol-params")
        yield ParamEditor(id="param-editor")
        yield PaneTitle("Engine-wide settings · Enter edits")
        yield EngineParamsTable(id="engine-params")

    @property
    def editor(self) -> ParamEditor:
        return self.query_one(ParamEditor)

    def show(self, view: EngineView | None) -> None:
        self.view = view
        if view is None:
            return
        self.query_one(SymbolParamsTable).show(view)
        self.query_one(EngineParamsTable).show(view)

    def on_data_table_cell_selected(self, event: DataTable.CellSelected) -> None:
        if event.data_table.id != "symbol-params" or self.view is None:
            return
        event.stop()
        name = str(event.cell_key.row_key.value)
        key = str(event.cell_key.column_key.value)
        sym = self.view.symbol(name)
        if key == "symbol" or sym is None:
            return
        current = param_value(key, getattr(sym.params, key))
        self._edited_table = "#symbol-params"
        self.editor.begin(name, key, current, symbol_value_validator(name, key, sym.params))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id != "engine-params" or self.view is None:
            return
        event.stop()
        key = str(event.row_key.value)
        current = param_value(key, getattr(self.view.engine, key))
        self._edited_table = "#engine-params"
        self.editor.begin(None, key, current, engine_value_validator(key, self.view.engine))

    def on_param_editor_discarded(self, event: ParamEditor.Discarded) -> None:
        self.return_focus()

    def return_focus(self) -> None:
        self.query_one(self._edited_table).focus()

    # -- writes ----------------------------------------------------------------
    def on_param_editor_apply(self, message: ParamEditor.Apply) -> None:
        editor = self.editor
        try:
            got = self.session.set_param(message.symbol, message.key, message.value)
        except USER_ERRORS as exc:
            editor.set_message(f"{one_line(exc)} (nothing written)", "error")
            return
        if got is None:
            editor.set_message("no engine supervised: nothing written", "error")
            return
        applied, version = got
        shown = param_value(message.key, getattr(applied, message.key))
        where = message.symbol or "engine"
        editor.set_message(
            f"applied {where} {message.key} = {shown} (read back from the kernel, config v{version})", "ok"
        )
        editor.finish()
        self.return_focus()

    def on_symbol_params_table_add_symbol(self, message: SymbolParamsTable.AddSymbol) -> None:
        self.action_add_symbol()

    def action_add_symbol(self) -> None:
        if self.session.iface is None:  # a first look only: the session looks again
            self.post_message(Failed("no engine supervised: attach or take over one first"))
            return
        self.app.push_screen(AddSymbolScreen(), self._add_symbol)

    def _add_symbol(self, result) -> None:
        if not result:
            return
        name, values = result
        if self.view and self.view.symbol(name):
            self.post_message(Failed(f"symbol {name} exists already: edit it in the table"))
            return
        try:
            applied = self.session.add_symbol(name, values)
        except USER_ERRORS as exc:
            self.post_message(Failed(f"{one_line(exc)} (nothing written)"))
            return
        if applied is None:
            self.post_message(Failed("no engine supervised: nothing written"))
            return
        self.editor.set_message(
            f"added {name} (buy {param_value('buy_target', applied.buy_target)}, "
            f"sell {param_value('sell_target', applied.sell_target)})",
            "ok",
        )

    def on_symbol_params_table_remove_symbol(self, message: SymbolParamsTable.RemoveSymbol) -> None:
        name = message.symbol
        self.app.push_screen(
            ConfirmScreen(
                "Remove symbol?",
                f"Remove {name} from the engine? Its position and statistics go with it.",
                yes="Remove",
                danger=True,
            ),
            lambda yes: self._remove_symbol(name) if yes else None,
        )

    def _remove_symbol(self, name: str) -> None:
        if self.editor.symbol == name:  # an edit left open must not write it back
            self.editor.finish()
        try:
            removed = self.session.remove_symbol(name)
        except USER_ERRORS as exc:
            self.post_message(Failed(one_line(exc)))
            return
        if removed:
            self.editor.set_message(f"removed {name}", "ok")
