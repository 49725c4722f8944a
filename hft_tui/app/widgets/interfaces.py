"""Interfaces: every link with its state, addresses, type and XDP program.

Select one, pick the XDP mode, attach (a) or detach (d).  The pane posts
the request; the app does the work in a thread and reports back.
"""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, DataTable, Label, RadioButton, RadioSet, Static

from ...netlink import Interface
from .table_sync import sync_rows

COLUMNS = [("name", "Interface"), ("index", "#"), ("state", "State"), ("kind", "Driver / type"),
           ("mac", "MAC"), ("mtu", "MTU"), ("addresses", "Addresses"), ("xdp", "XDP program")]
MODES = ("native", "generic")


def xdp_text(iface: Interface, engines: dict[str, int]) -> Text:
    """Whose XDP program sits on ``iface``: ours, someone else's or none, and in which mode."""
    xdp = iface.xdp
    ours = engines.get(iface.name)
    if xdp.mode and ours is not None and xdp.prog_id == ours:
        return Text(f"hft-tui engine ({xdp.mode}, id {xdp.prog_id})", style="bold green")
    if xdp.mode:
        return Text(f"other program, id {xdp.prog_id} ({xdp.mode})", style="yellow")
    if ours is not None:
        return Text("hft-tui pins left, not attached", style="yellow")
    return Text("-", style="dim")


class InterfaceTable(DataTable):
    def on_mount(self) -> None:
        self.cursor_type = "row"
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    def show(self, interfaces: list[Interface], engines: dict[str, int]) -> None:
        rows = {}
        for i in interfaces:
            state_style = "green" if i.state == "UP" else ("red" if i.state in ("DOWN", "LOWERLAYERDOWN") else "")
            rows[i.name] = (
                Text(i.name, style="bold"), str(i.index), Text(i.state, style=state_style), i.kind, i.mac,
                str(i.mtu), ", ".join(i.addresses) or "-", xdp_text(i, engines),
            )
        sync_rows(self, rows, [k for k, _ in COLUMNS])

    def selected(self) -> str | None:
        if not self.row_count:
            return None
        return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)

    def select(self, name: str) -> bool:
        for idx, key in enumerate(self.rows):
            if key.value == name:
                self.move_cursor(row=idx)
                return True
        return False


class InterfacesPane(Vertical):
    BINDINGS = [
        Binding("a", "attach", "Attach", id="attach"),
        Binding("d", "detach", "Detach", id="detach"),
        Binding("m", "toggle_mode", "Mode", id="toggle-mode"),
    ]

    class AttachRequested(Message):
        def __init__(self, iface: str, mode: str) -> None:
            super().__init__()
            self.iface = iface
            self.mode = mode

    class DetachRequested(Message):
        def __init__(self, iface: str) -> None:
            super().__init__()
            self.iface = iface

    def __init__(self, mode: str = "native", **kwargs) -> None:
        super().__init__(**kwargs)
        self.initial_mode = mode if mode in MODES else "native"

    def compose(self):
        yield Label("Interfaces · arrows select · a attaches · d detaches · m switches the XDP mode",
                    classes="pane-title")
        yield InterfaceTable(id="interface-table")
        with Horizontal(id="attach-controls"):
            yield Label("XDP mode:", id="mode-label")
            with RadioSet(id="xdp-mode"):
                for mode in MODES:
                    yield RadioButton(mode, value=(mode == self.initial_mode), id=f"mode-{mode}")
            yield Button("Attach (a)", id="attach-button", variant="success")
            yield Button("Detach (d)", id="detach-button", variant="warning")
        yield Static("", id="interfaces-message")

    @property
    def table(self) -> InterfaceTable:
        return self.query_one(InterfaceTable)

    @property
    def mode(self) -> str:
        pressed = self.query_one(RadioSet).pressed_button
        return str(pressed.label) if pressed else self.initial_mode

    def set_message(self, text: str, kind: str = "info") -> None:
        msg = self.query_one("#interfaces-message", Static)
        msg.update(text)
        msg.set_classes(f"-{kind}")

    def action_toggle_mode(self) -> None:
        other = MODES[(MODES.index(self.mode) + 1) % len(MODES)]
        self.query_one(f"#mode-{other}", RadioButton).value = True

    def action_attach(self) -> None:
        iface = self.table.selected()
        if iface:
            self.post_message(self.AttachRequested(iface, self.mode))

    def action_detach(self) -> None:
        iface = self.table.selected()
        if iface:
            self.post_message(self.DetachRequested(iface))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "attach-button":
            event.stop()
            self.action_attach()
        elif event.button.id == "detach-button":
            event.stop()
            self.action_detach()
