"""The one-line texts the panes share: a pane's title, and the message line beside an action."""

from __future__ import annotations

from textual.widgets import Label, Static

KINDS = ("error", "ok", "info")


class PaneTitle(Label):
    DEFAULT_CSS = """
    PaneTitle {
        text-style: bold;
        color: $accent;
        padding: 0 1;
        width: 1fr;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """


class MessageLine(Static):
    """What an action did or why it was refused; its kind is its class (-error, -ok, -info)."""

    DEFAULT_CSS = """
    MessageLine {
        width: 1fr;
        padding: 1 1;
    }
    MessageLine.-error {
        color: $error;
        text-style: bold;
    }
    MessageLine.-ok {
        color: $success;
    }
    MessageLine.-info {
        color: $text-muted;
    }
    """

    def show(self, text: str, kind: str = "info") -> None:
        if kind not in KINDS:
            raise ValueError(f"message kind {kind!r} is not one of {', '.join(KINDS)}")
        self.update(text)
        self.set_classes(f"-{kind}")
