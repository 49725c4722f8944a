"""Interfaces: every link with its state, addresses, type and XDP program.

Select one, pick the XDP mode, attach (a) or detach (d).  The pane owns
these: it lists the interfaces every few seconds, attaches and detaches in
threads through the session, and tells the app what needs it (supervise the
engine just attached, the engine detached, a failure).
"""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Label, RadioButton, RadioSet

from ...netlink import Interface
from ..dialogs import ConfirmScreen
from ..formatting import one_line
from ..labels import MessageLine, PaneTitle
from ..messages import AttachFinished, EngineDetached, Failed, InterfacesListed, Notice, TakeOverRequested
from ..session import Session, listed_engines
from .table_sync import sync_rows

INTERFACE_REFRESH_S = 2.0
# What matters first on the left: on a narrow terminal the rest is one arrow key away.
COLUMNS = [
    ("name", "Interface"),
    ("state", "State"),
    ("xdp", "XDP program"),
    ("addresses", "Addresses"),
    ("kind", "Driver / type"),
    ("mac", "MAC"),
    ("mtu", "MTU"),
    ("index", "#"),
]
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
    DEFAULT_CSS = """
    InterfaceTable {
        height: auto;
    }
    """

    def on_mount(self) -> None:
        self.cursor_type = "row"
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    def show(self, interfaces: list[Interface], engines: dict[str, int]) -> None:
        rows = {}
        for i in interfaces:
            state_style = "green" if i.state == "UP" else ("red" if i.state in ("DOWN", "LOWERLAYERDOWN") else "")
            rows[i.name] = (
                Text(i.name, style="bold"),
                Text(i.state, style=state_style),
                xdp_text(i, engines),
                ", ".join(i.addresses) or "-",
                i.kind,
                i.mac,
                str(i.mtu),
                str(i.index),
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
    DEFAULT_CSS = """
    #attach-controls {
        height: auto;
        margin-top: 1;
    }
    #mode-label {
        padding: 1 1;
    }
    #xdp-mode {
        layout: horizontal;
        width: auto;
        height: auto;
    }
    #xdp-mode RadioButton {
        width: auto;
        margin: 0 1;
    }
    #attach-controls Button {
        margin: 0 1;
    }
    """

    def __init__(self, session: Session, mode: str = "native", select: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.session = session
        self.initial_mode = mode if mode in MODES else "native"
        self.select_iface = select  # the interface named on the command line
        self.busy: str | None = None  # an attach/detach under way

    def compose(self):
        yield PaneTitle("Interfaces · a attaches · d detaches · m switches the XDP mode")
        yield InterfaceTable(id="interface-table")
        with Horizontal(id="attach-controls"):
            yield Label("XDP mode:", id="mode-label")
            with RadioSet(id="xdp-mode"):
                for mode in MODES:
                    yield RadioButton(mode, value=(mode == self.initial_mode), id=f"mode-{mode}")
            yield Button("Attach (a)", id="attach-button", variant="success")
            yield Button("Detach (d)", id="detach-button", variant="warning")
        yield MessageLine("", id="interfaces-message")

    def on_mount(self) -> None:
        self.refresh_interfaces()
        self.set_interval(INTERFACE_REFRESH_S, self._refresh_if_shown)

    def _refresh_if_shown(self) -> None:
        """The list is read (netlink, a thread) only while someone can see it;
        the screen lists them again as soon as the tab is shown."""
        if self.is_on_screen:
            self.refresh_interfaces()

    @property
    def table(self) -> InterfaceTable:
        return self.query_one(InterfaceTable)

    @property
    def mode(self) -> str:
        pressed = self.query_one(RadioSet).pressed_button
        return str(pressed.label) if pressed else self.initial_mode

    def set_message(self, text: str, kind: str = "info") -> None:
        self.query_one("#interfaces-message", MessageLine).show(text, kind)

    def action_toggle_mode(self) -> None:
        other = MODES[(MODES.index(self.mode) + 1) % len(MODES)]
        self.query_one(f"#mode-{other}", RadioButton).value = True

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "attach-button":
            event.stop()
            self.action_attach()
        elif event.button.id == "detach-button":
            event.stop()
            self.action_detach()

    # -- the list ----------------------------------------------------------------
    @work(thread=True, exclusive=True, group="interfaces")
    def refresh_interfaces(self) -> None:
        try:
            self.post_message(InterfacesListed(self.session.interfaces(), self.session.engines()))
        except Exception as exc:  # netlink trouble: shown, never raised
            self.post_message(InterfacesListed([], {}, error=f"cannot list interfaces: {one_line(exc)}"))

    def on_interfaces_listed(self, message: InterfacesListed) -> None:
        message.stop()
        if not self.is_attached:
            return
        if message.error:
            self.post_message(Failed(message.error, notify=False))
            return
        table = self.table
        first = table.row_count == 0
        table.show(message.interfaces, message.engines)
        wanted = self.session.iface or self.select_iface  # the supervised interface first
        if first and wanted and not table.select(wanted):
            self.post_message(Failed(f"interface {self.select_iface} does not exist"))

    # -- attach and detach -----------------------------------------------------------
    def action_attach(self) -> None:
        iface = self.table.selected()
        if not iface:
            return
        if self.busy:
            self.set_message(f"wait: {self.busy}", "error")
            return
        supervised = self.session.iface
        if supervised is not None:
            self.set_message(
                f"{iface} is already supervised here"
                if supervised == iface
                else f"this app supervises {supervised}: detach it first (d on its row)",
                "error",
            )
            return
        engines = self._engines()
        if engines is None:
            return
        if iface in engines:
            rec = self.session.record(iface)

            def take_over(yes: bool | None) -> None:
                if yes:
                    self.post_message(TakeOverRequested(iface))

            self.app.push_screen(
                ConfirmScreen(
                    "Engine already attached",
                    f"An hft-tui engine is already on {iface}"
                    f"{f' ({rec.mode}, program id {rec.prog_id})' if rec else ''}. Take it over?",
                    yes="Take over",
                ),
                take_over,
            )
            return
        mode = self.mode
        self.busy = f"attaching to {iface}"
        self.set_message(f"compiling and attaching to {iface} in {mode} mode…", "info")
        self.attach_engine(iface, mode)

    def _engines(self) -> dict[str, int] | None:
        """The engines attached here; None, the reason shown, when they cannot be listed."""
        engines, why = listed_engines(self.session)
        if engines is None:
            self.set_message(why, "error")
        return engines

    @work(thread=True, group="attach")
    def attach_engine(self, iface: str, mode: str) -> None:
        try:
            self.post_message(AttachFinished("attach", iface, True, self.session.attach(iface, mode)))
        except Exception as exc:  # every failure is one line in the app
            self.post_message(AttachFinished("attach", iface, False, f"cannot attach to {iface}: {one_line(exc)}"))

    def action_detach(self) -> None:
        iface = self.table.selected()
        if not iface:
            return
        if self.busy:
            self.set_message(f"wait: {self.busy}", "error")
            return
        engines = self._engines()
        if engines is None:
            return
        if iface not in engines:
            self.set_message(f"no hft-tui engine on {iface} (hft-tui never detaches other programs)", "error")
            return
        self.busy = f"detaching from {iface}"
        self.set_message(f"detaching from {iface}…", "info")
        self.detach_engine(iface)

    @work(thread=True, group="attach")
    def detach_engine(self, iface: str) -> None:
        try:
            self.post_message(AttachFinished("detach", iface, True, "; ".join(self.session.detach(iface))))
        except Exception as exc:
            self.post_message(AttachFinished("detach", iface, False, f"cannot detach from {iface}: {one_line(exc)}"))

    def on_attach_finished(self, message: AttachFinished) -> None:
        message.stop()
        if not self.is_attached:
            return
        self.busy = None
        if not message.ok:
            self.set_message(message.detail, "error")
            self.post_message(Failed(message.detail))
        else:
            self.set_message(message.detail, "ok")
            self.post_message(Notice(message.detail))
            if message.action == "attach":
                self.post_message(TakeOverRequested(message.iface))
            else:
                self.post_message(EngineDetached(message.iface, message.detail))
        self.refresh_interfaces()
