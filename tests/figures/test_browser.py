"""map.html and curves.html in a real browser: Debian's chromium, headless, driven by
Playwright (no browser download: ``executable_path`` is the system binary).

CI installs chromium (tests/browser/install.sh from .ci/run); the tests skip, naming the
missing piece, only where there is no chromium binary or no playwright package. Pages are
opened from files with the network switched off, as a user offline would open them.
"""

import io
import shutil

import numpy as np
import pytest
from matplotlib.image import imread
from planted import planted_runs
from test_interactive import METRICS, analysed_case, map_text, synthetic_runs

from trainmap.figures.curves_html import curves_page
from trainmap.figures.html import write_page

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')"
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium on PATH (Debian: apt-get install chromium; tests/browser/install.sh)",
)
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


def open_page(browser, path):
    """A page showing ``path`` offline; returns (page, console errors and page errors)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, offline=True)
    page = context.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.route("http*://**", lambda route: (errors.append(route.request.url), route.abort()))
    page.goto(path.as_uri())
    page.wait_for_function("document.querySelectorAll('.scatterlayer .trace').length > 0")
    return page, errors


NAME_TRACES = """document.querySelectorAll('.scatterlayer .trace').forEach((g) => {
  g.setAttribute('data-name', g.__data__[0].trace.name);
})"""


def trace_points(page, name: str):
    """The marker elements of the named trace (found by the data plotly bound to each
    trace's SVG group; traces without points have no group), in point order."""
    page.evaluate(NAME_TRACES)
    return page.locator(f".scatterlayer .trace[data-name='{name}']").locator("path.point")


def hover_text(page, point) -> str:
    # Leave the plot first and wait for the last label to go: under load plotly may not
    # have handled the next move yet, and the old label would be read as the new one.
    page.mouse.move(0, 0)
    page.wait_for_selector(".hoverlayer .hovertext", state="detached")
    box = point.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_selector(".hoverlayer .hovertext")
    return page.locator(".hoverlayer .hovertext").first.text_content()


def not_blank(page) -> bool:
    """The screenshot has ink: more than 1% of the pixels differ clearly from white."""
    pixels = imread(io.BytesIO(page.screenshot()), format="png")[..., :3]
    return float((pixels < 0.8).any(axis=-1).mean()) > 0.01


@pytest.fixture(scope="module")
def map_file(tmp_path_factory):
    case = analysed_case(planted_runs(n_runs=10), 3)
    path = tmp_path_factory.mktemp("pages") / "map.html"
    write_page(map_text(case), path)
    return path, case


def test_map_loads_and_shows_states_edges_hovers_and_seeds(browser, map_file):
    path, case = map_file
    page, errors = open_page(browser, path)
    states = trace_points(page, "states")
    edges = trace_points(page, "edges")
    assert states.count() == len(case["map"]["states"]) == 3
    assert edges.count() == len(case["map"]["edges"])
    ids = page.evaluate(
        "document.getElementById('figure').data.find((t) => t.name === 'states').customdata"
    )
    detour_runs = case["planted"].detour_runs
    sources = [(e["source"], e["target"]) for e in case["map"]["edges"]]
    text = hover_text(page, edges.nth(sources.index((0, 1))))
    assert "P(S0→S1)" in text and "transition probability" in text
    text = hover_text(page, states.nth(ids.index(1)))
    assert f"runs visiting: {len(detour_runs)}/10" in text and "DETOUR" in text
    assert "mean dwell" in text and "converged runs visiting" in text
    page.mouse.down()  # a click where the state's hover shows (plotly clicks what it hovers)
    page.mouse.up()
    page.wait_for_selector("#selection td.seed")
    seeds = [int(s) for s in page.locator("#selection td.seed").all_text_contents()]
    assert seeds == detour_runs
    assert "Runs through S1" in page.locator("#selection h2").text_content()
    # picking a seed draws its path: from its first state's node to its last one's
    page.select_option("#seed-picker", str(detour_runs[0]))
    drawn = page.evaluate(
        "document.getElementById('figure').data.find((t) => t.name === 'run path').x.length"
    )
    assert drawn > 2
    assert "S0 (from step" in page.locator("#path-info").text_content()
    assert not_blank(page)
    page.screenshot(path=path.with_suffix(".png"))  # kept beside the page for a look
    assert errors == []


def test_curves_load_switch_feature_and_hover(browser, tmp_path):
    trajectories, states = synthetic_runs(6, 300)
    path = tmp_path / "curves.html"
    columns = METRICS[:3]
    convergence = {"column": "eval_accuracy", "threshold": 0.9}
    write_page(curves_page(trajectories, states, columns, convergence, 4, "synthetic"), path)
    page, errors = open_page(browser, path)
    figure = "document.getElementById('figure')"
    assert page.evaluate(f"{figure}.layout.yaxis.title.text") == "eval_accuracy"
    first = page.evaluate(f"{figure}.data[0].y.filter((v) => v !== null)")
    page.select_option("#feature-picker", columns[1])
    assert page.evaluate(f"{figure}.layout.yaxis.title.text") == columns[1]
    second = page.evaluate(f"{figure}.data[0].y.filter((v) => v !== null)")
    assert first != second
    # the decoded values are the table's, to the 16-bit display precision
    run0 = trajectories[trajectories["seed"] == 0].set_index("step")[columns[1]]
    x0 = page.evaluate(f"{figure}.data[0].x[0]")
    span = trajectories[columns[1]].max() - trajectories[columns[1]].min()
    assert second[0] == pytest.approx(run0[x0], abs=span / 65534)
    assert trace_points(page, "S0").count() == 0  # lines only
    page.evaluate(NAME_TRACES)
    # one drawn piece of S0 per run (every synthetic run starts in S0 once)
    assert page.locator(".scatterlayer .trace[data-name='S0'] path.js-line").count() == 6
    n_states = page.evaluate(f"{figure}.data.filter((t) => t.x.length > 0).length")
    assert n_states == 4
    box = page.locator(".nsewdrag").first.bounding_box()
    for fraction in np.linspace(0.05, 0.3, 12):  # find a curve to hover on, left to right
        page.mouse.move(box["x"] + box["width"] * fraction, box["y"] + box["height"] * 0.5)
        for y in np.linspace(0.1, 0.9, 17):
            page.mouse.move(box["x"] + box["width"] * fraction, box["y"] + box["height"] * y)
            if page.locator(".hoverlayer .hovertext").count():
                break
        if page.locator(".hoverlayer .hovertext").count():
            break
    text = page.locator(".hoverlayer .hovertext").first.text_content()
    assert "seed" in text and "step" in text and "state S" in text and "value" in text
    assert not_blank(page)
    assert errors == []
