"""The run's pages in a real headless Chromium: they draw, a hover shows an op's states, and a
100k-op history's pages are drawn in well under two seconds."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "checkers"))
from test_linear_html import stale_read_history  # noqa: E402

from squall.checkers.linearizable import check  # noqa: E402
from squall.report import linear_html, timeline_html  # noqa: E402
from tests.browser import Page, browser, chromium  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(chromium() is None, reason="needs chromium: ./scripts/setup --with-browser"),
]


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    with browser() as p:
        yield p


def centre_of(page: Page, selector: str) -> tuple[float, float]:
    box = page.js(
        f"(() => {{ const r = document.querySelector({selector!r}).getBoundingClientRect();"
        " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
    )
    return float(box[0]), float(box[1])


def test_hovering_the_stale_read_shows_its_node_and_the_state_before_it(
    page: Page, tmp_path: Path
) -> None:
    h = stale_read_history(50)
    path = linear_html.write_html(tmp_path / "linear.html", check("register", h), h)
    page.open(path)
    i = page.js("D.ops.findIndex(o => o.f === 'read')")
    page.hover(*centre_of(page, f'g.op[data-i="{i}"]'))
    tip = page.js("document.getElementById('tip').textContent")
    assert "read() -> -1" in tip
    assert "node n3" in tip
    assert "state before: 49" in tip
    assert page.js("getComputedStyle(document.getElementById('tip')).display") == "block"


def test_a_click_pins_the_tooltip_and_the_wheel_zooms(page: Page, tmp_path: Path) -> None:
    h = stale_read_history(50)
    path = linear_html.write_html(tmp_path / "linear.html", check("register", h), h)
    page.open(path)
    x, y = centre_of(page, "g.op")
    page.click(x, y)
    assert page.js("document.getElementById('tip').classList.contains('pinned')")
    page.hover(5, 5)
    assert page.js("getComputedStyle(document.getElementById('tip')).display") == "block", (
        "unpinned"
    )
    span = page.js("hi - lo")
    page.call("Input.dispatchMouseEvent", type="mouseWheel", x=x, y=y, deltaX=0, deltaY=-120)
    assert page.js("hi - lo") < span, "the wheel did not zoom in"


def test_hovering_an_op_on_the_timeline_names_it(page: Page, tmp_path: Path) -> None:
    h = stale_read_history(50)
    path = tmp_path / "timeline.html"
    path.write_text(timeline_html.render(h, "t", concurrency=5))
    page.open(path)
    lane, start, end = page.js("[D.ops[0][0], D.ops[0][1], D.ops[0][2]]")
    left = page.js("cv.getBoundingClientRect().left")
    top = page.js("cv.getBoundingClientRect().top")
    page.hover(
        left + page.js(f"x({(start + end) // 2})"), top + page.js(f"TOP + {lane} * LANE + 7")
    )
    tip = page.js("document.getElementById('tip').textContent")
    assert tip.startswith("write 0"), tip
    assert "node n1" in tip


def test_a_100k_op_historys_pages_are_drawn_in_under_two_seconds(
    page: Page, tmp_path: Path
) -> None:
    h = stale_read_history(50_000)
    res = check("register", h)
    lin = linear_html.write_html(tmp_path / "linear.html", res, h)
    tl = tmp_path / "timeline.html"
    tl.write_text(timeline_html.render(h, "t", concurrency=5))
    for path in (lin, tl):
        page.open(path)
        drawn_ms = int(page.js("+document.body.dataset.drawnMs"))
        assert drawn_ms < 2000, f"{path.name} took {drawn_ms} ms to draw"
    assert page.js("D.ops.length") <= timeline_html.MAX_OPS
