"""The footer keeps its keys while they stay the same, and lets the old ones go when they change.

Textual's own Footer composed new keys on every focus change and kept the old ones
alive (Textual issue #6666): a Tab every 200 ms grew the heap by ~60k objects a
second, and the garbage collections that walked it held keys back for 100s of ms.
"""

from __future__ import annotations

import gc
import weakref

import pytest
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widget import Widget
from textual.widgets._footer import FooterKey

from test_tui import make_app, screen_text, settle
from widgets.footer import KeyFooter

pytestmark = pytest.mark.anyio


class Pane(Widget, can_focus=True):
    DEFAULT_CSS = "Pane { height: 3; }"


class Orders(Pane):
    BINDINGS = [Binding("o", "app.bell", "Orders")]


class Stock(Pane):
    BINDINGS = [Binding("s", "app.bell", "Stock")]


class TwoPanes(App):
    def compose(self) -> ComposeResult:
        yield Orders()
        yield Stock()
        yield KeyFooter()


def live_keys(app: App) -> list[FooterKey]:
    return list(app.screen.query(FooterKey))


def footer_keys_alive() -> int:
    return sum(isinstance(o, FooterKey) for o in gc.get_objects())


def footer_text(app: App) -> str:
    return screen_text(app).splitlines()[-1]


async def test_tabbing_between_panels_with_the_same_keys_keeps_the_footer_and_its_keys():
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(app, pilot)
        gc.collect()
        alive = footer_keys_alive()
        before = [weakref.ref(key) for key in live_keys(app)]
        assert before
        for _ in range(20):
            await pilot.press("tab")
        await pilot.pause()
        gc.collect()
        assert [key() for key in before] == live_keys(app)
        assert footer_keys_alive() == alive
        assert "Quit" in footer_text(app)


async def test_the_footer_follows_keys_that_change_and_the_keys_it_replaced_are_freed():
    app = TwoPanes()
    async with app.run_test(size=(80, 10)) as pilot:
        orders, stock = app.query_one(Orders), app.query_one(Stock)
        orders.focus()
        await pilot.pause()
        assert "Orders" in footer_text(app) and "Stock" not in footer_text(app)
        replaced = [weakref.ref(key) for key in live_keys(app)]
        for pane in (stock, orders) * 5 + (stock,):
            pane.focus()
            await pilot.pause()
        assert "Stock" in footer_text(app) and "Orders" not in footer_text(app)
        gc.collect()
        assert replaced and all(key() is None for key in replaced)
