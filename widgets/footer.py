"""The footer: Textual's Footer, rebuilt only when the keys it shows change.

Textual's Footer throws its keys away and composes new ones on every bindings update,
which every focus change sends (each Tab between panels), though the panels share
their keys. And each key it throws away stays referenced from the Footer's own
`compact` watchers until `compact` changes, which it never does (Textual issue #6666,
open in 8.2): ~1,300 objects kept per Tab. On the lab with a Tab every 200 ms the
heap grew 104k -> 418k objects in 30 s, every full garbage collection walked all of it,
and those collections (70 -> 350 ms, 18 in 30 s) were the loop stalls that held keys
back (p99 515 ms, tests/bench/hostile_scale.py). So: compose only when the shown keys
differ, and let the watchers of the keys thrown away go when it does.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer


class KeyFooter(Footer):
    """Footer that keeps its keys while the bindings it shows stay the same."""

    _composed_for: tuple | None = None

    def shown_keys(self, screen: Screen) -> tuple:
        """What the footer draws from: every shown binding with its state, and the palette's key."""
        shown = tuple((binding, enabled, tooltip) for _, binding, enabled, tooltip
                      in screen.active_bindings.values() if binding.show)
        return shown, self.show_command_palette, self.app.ENABLE_COMMAND_PALETTE

    def compose(self) -> ComposeResult:
        if self._bindings_ready:
            self._composed_for = self.shown_keys(self.screen)
        yield from super().compose()

    def bindings_changed(self, screen: Screen) -> None:
        if self._composed_for is not None and screen is self.screen \
                and self.shown_keys(screen) == self._composed_for:
            return
        super().bindings_changed(screen)

    async def recompose(self) -> None:
        await super().recompose()
        # Setting `compact` again is what drops the watchers of closed keys (Textual
        # prunes them only there); the live keys get the same value back.
        self.mutate_reactive(Footer.compact)
