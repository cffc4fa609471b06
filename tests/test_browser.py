"""Real-browser test: the adaptation explorer notebook as a user meets it in JupyterLab.

Starts JupyterLab headless on 127.0.0.1 (token, temporary config/data/settings dirs, news and update
checks off), drives Debian's Chromium through Playwright (``executable_path=/usr/bin/chromium``; the
Playwright-downloaded browsers are never used), runs every cell of
``notebooks/03_few_shot_adaptation.ipynb`` (a copy in a temporary folder), drags the "shots" slider
with the mouse and checks that

* no cell raised and no widget failed to render ("Error displaying widget", unregistered JS module),
* the MAE readout text changes,
* the explorer's figure changes (pixels of the figure element),
* the nglview WebGL canvas is drawn (pixels that change when the canvas is hidden).

A second test serves the no-code workshop app (``notebooks/app.ipynb``) with Voilà on 127.0.0.1, drags its
"shots" slider and checks that the verdict line and the explorer's figure change and that no widget failed.

Every request that does not go to loopback is aborted, so the test also proves the notebook needs no
CDN. Screenshots go to ``$NANONB_ARTIFACTS/browser`` (default ``<repo>/artifacts/browser``).

Run::

    pytest -m browser tests/test_browser.py -p no:cacheprovider

Needs ``/usr/bin/chromium`` (``apt-get install -y chromium``) and the PyPI ``playwright`` package;
without them the test skips, unless ``NANONB_REQUIRE_BROWSER=1`` (set in CI) turns the skip into a
failure. ``NANONB_BROWSER_NOTEBOOK`` points the test at another notebook with the same widgets.
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = Path(os.environ.get("NANONB_BROWSER_NOTEBOOK", REPO_ROOT / "notebooks" / "03_few_shot_adaptation.ipynb"))
CHROMIUM = Path(os.environ.get("NANONB_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                  "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
#: seconds allowed for "run all cells" of the notebook (kernel start excluded)
RUN_TIMEOUT_S = float(os.environ.get("NANONB_BROWSER_TIMEOUT", "300"))
SLIDER_LABEL = "shots"
READOUT_TEXT = "MAE"

pytestmark = pytest.mark.browser


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("NANONB_REQUIRE_BROWSER", "") not in ("", "0"):
        pytest.fail(f"{reason} (NANONB_REQUIRE_BROWSER is set, so this is a failure, not a skip)")
    pytest.skip(reason)


def _artifact_dir() -> Path:
    base = Path(os.environ.get("NANONB_ARTIFACTS", REPO_ROOT / "artifacts"))
    d = base / "browser"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lab_env(tmp: Path) -> dict[str, str]:
    """Environment isolating JupyterLab from the user's config, data, settings and caches."""
    settings = tmp / "lab-settings"
    for plugin, values in {
        "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
        # every cell in the DOM (no virtualised rendering), so widgets below the fold can be located
        "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    }.items():
        f = settings / f"{plugin}.jupyterlab-settings"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(values))
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)  # an inherited MPLBACKEND=Agg would replace the kernels' inline backend
    env.update({
        "XDG_CONFIG_HOME": str(tmp / "xdg-config"), "XDG_CACHE_HOME": str(tmp / "xdg-cache"),
        "JUPYTER_CONFIG_DIR": str(tmp / "jupyter-config"), "JUPYTER_DATA_DIR": str(tmp / "jupyter-data"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "jupyter-runtime"), "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "lab-workspaces"), "IPYTHONDIR": str(tmp / "ipython"),
        "MPLCONFIGDIR": str(tmp / "mpl"), "JUPYTER_PLATFORM_DIRS": "1",
    })
    return env


class Lab:
    """A running JupyterLab server (``url`` carries no token; ``token`` separately)."""

    def __init__(self, proc: subprocess.Popen, url: str, token: str, root: Path, log: Path):
        self.proc, self.url, self.token, self.root, self.log = proc, url, token, root, log

    def log_tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """JupyterLab on 127.0.0.1 serving a copy of ``notebooks/`` (the repository copy stays untouched)."""
    if not NOTEBOOK.is_file():
        pytest.fail(f"{NOTEBOOK} not found: the browser test drives this notebook (set NANONB_BROWSER_NOTEBOOK "
                    "to use another one)")
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        _skip_or_fail("jupyterlab is not installed (pip install 'nanonb[notebooks]')")
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "root"
    shutil.copytree(NOTEBOOK.parent, root, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    token, port = secrets.token_hex(16), _free_port()
    log = tmp / "jupyterlab.log"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, env=_lab_env(tmp), stdout=fh, stderr=subprocess.STDOUT, cwd=root,
                                start_new_session=True)
    server = Lab(proc, f"http://127.0.0.1:{port}", token, root, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with code {proc.returncode}:\n{server.log_tail()}")
            try:
                urllib.request.urlopen(f"{server.url}/api/status?token={token}", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer on {server.url} within 60 s:\n{server.log_tail()}")
                time.sleep(0.3)
        yield server
    finally:
        if proc.poll() is None:
            proc.terminate()  # the server shuts its kernels down on SIGTERM
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # our own session: the server and its kernels
                proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian Chromium driven by Playwright (never a Playwright-downloaded browser)."""
    if not CHROMIUM.exists():
        _skip_or_fail(f"{CHROMIUM} not found: apt-get install -y chromium (or set NANONB_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _skip_or_fail("playwright is not installed: pip install playwright (do NOT run 'playwright install')")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS)
        try:
            yield b
        finally:
            b.close()


# ----------------------------------------------------------------------------------------- helpers
_KERNEL = "window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
_KERNEL_READY = """() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
    return !!k && k.status === 'idle'; }"""
_ALL_EXECUTED = """() => { const nb = window.jupyterapp.shell.currentWidget.content.model.toJSON();
    const code = nb.cells.filter(c => c.cell_type === 'code' && c.source.length);
    const busy = [...document.querySelectorAll('.jp-InputPrompt')].some(p => p.textContent.includes('*'));
    return !busy && code.every(c => c.execution_count !== null); }"""
_CELL_ERRORS = """() => window.jupyterapp.shell.currentWidget.content.model.toJSON().cells
    .flatMap(c => (c.outputs || []).filter(o => o.output_type === 'error')
    .map(o => o.ename + ': ' + o.evalue))"""
# Marks the explorer's elements with data-nanonb="slider|handle|readout|figure|canvas". The readout and
# figure (an ipywidgets Image, an ipympl canvas or an inline PNG) are looked up inside the cell that holds
# the slider (nearest enclosing element first); the nglview canvas preferably there too, else anywhere.
_MARK = """([label, readoutText]) => {
  document.querySelectorAll('[data-nanonb]').forEach(e => e.removeAttribute('data-nanonb'));
  const sliders = [...document.querySelectorAll('.widget-hslider')].filter(s => {
    const l = s.querySelector('.widget-label'); return l && l.textContent.trim() === label; });
  if (!sliders.length) return {error: `no slider labelled ${JSON.stringify(label)}`};
  const s = sliders[0], cell = s.closest('.jp-Cell'), found = {slider: s, handle: s.querySelector('.noUi-handle')};
  const isFig = e => !e.closest('.ui-resizable');  // nglview wraps its stage in a jQuery-UI resizable
  for (let a = s.parentElement; a && cell.contains(a); a = a.parentElement) {
    if (!found.readout) found.readout = [...a.querySelectorAll('.widget-html, .widget-htmlmath, .widget-label')]
        .find(h => h.textContent.includes(readoutText));
    if (!found.figure) found.figure = [...a.querySelectorAll(
        'img.widget-image, .jupyter-matplotlib-canvas-div, .jp-RenderedImage img')].find(isFig);
    if (!found.canvas) found.canvas = [...a.querySelectorAll('canvas')]
        .find(c => !c.closest('.jupyter-matplotlib') && c.width > 50);
  }
  if (!found.canvas) found.canvas = [...document.querySelectorAll('.jp-Notebook canvas')]
      .find(c => !c.closest('.jupyter-matplotlib') && c.width > 50);
  const out = {};
  for (const [k, e] of Object.entries(found)) { if (e) { e.setAttribute('data-nanonb', k); out[k] = true; } }
  out.readoutText = found.readout ? found.readout.textContent.trim() : null;
  out.sliderValue = (s.querySelector('.widget-readout') || {}).textContent;
  return out;
}"""
_WIDGET_PROBLEMS = re.compile(r"Error displaying widget|is not registered|Failed to load model class|"
                              r"Loading widget\.\.\.|Error rendering", re.I)


def _png(data: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(np.int16)


def _canvas_drawn_fraction(page, canvas, path: Path) -> float:
    """Fraction of a canvas's box whose pixels change when the canvas is hidden (what it draws)."""
    box = canvas.bounding_box()
    assert box and box["width"] > 10 and box["height"] > 10, f"canvas has no usable size: {box}"
    shown = page.screenshot(clip=box, path=str(path))
    canvas.evaluate("c => { c.style.visibility = 'hidden'; }")
    try:
        page.wait_for_timeout(200)
        hidden = page.screenshot(clip=box, path=str(path.with_name(path.stem + "_hidden.png")))
    finally:
        canvas.evaluate("c => { c.style.visibility = ''; }")
    return _changed_fraction(shown, hidden)


def _changed_fraction(a: bytes, b: bytes) -> float:
    """Fraction of pixels that differ between two screenshots (1.0 if their sizes differ)."""
    x, y = _png(a), _png(b)
    if x.shape != y.shape:
        return 1.0
    return float((np.abs(x - y).max(axis=2) > 8).mean())


def _wait(page, js: str, timeout_s: float, what: str, lab: Lab, arg=None) -> None:
    try:
        page.wait_for_function(js, arg=arg, timeout=timeout_s * 1000, polling=250)
    except Exception as exc:  # playwright TimeoutError; keep the server log in the message
        shot = _artifact_dir() / "timeout.png"
        page.screenshot(path=str(shot))
        raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what} (screenshot {shot}); "
                             f"JupyterLab log tail:\n{lab.log_tail()}") from exc


# ------------------------------------------------------------------------------------------- test
def test_explorer_in_jupyterlab(lab: Lab, browser) -> None:
    art = _artifact_dir()
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    blocked: list[str] = []
    console_errors: list[str] = []

    def only_loopback(route) -> None:
        url = route.request.url
        if re.match(r"^(data:|blob:|https?://(127\.0\.0\.1|localhost)(:\d+)?/)", url):
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    page.route("**/*", only_loopback)
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: console_errors.append(f"pageerror: {e}"))
    try:
        page.goto(f"{lab.url}/lab/tree/{NOTEBOOK.name}?token={lab.token}")
        _wait(page, _KERNEL_READY, 90, "the notebook to open with an idle kernel", lab)
        page.evaluate("window.jupyterapp.shell.collapseLeft()")
        timings["open_to_idle_kernel_s"] = time.monotonic() - t0

        t1 = time.monotonic()
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        page.wait_for_timeout(1000)
        _wait(page, f"() => {_KERNEL}.status === 'idle' && ({_ALL_EXECUTED})()", RUN_TIMEOUT_S,
              "all cells to finish", lab)
        timings["run_all_cells_s"] = time.monotonic() - t1
        page.wait_for_timeout(1000)  # widget comm traffic after the last cell can flip the kernel busy again
        _wait(page, f"() => {_KERNEL}.status === 'idle'", 60, "the kernel to settle after run-all", lab)
        page.screenshot(path=str(art / "01_after_run_all.png"))
        errors = page.evaluate(_CELL_ERRORS)
        assert not errors, f"cells raised: {errors}"

        _wait(page, "([l]) => [...document.querySelectorAll('.widget-hslider .widget-label')]"
                    ".some(e => e.textContent.trim() === l)", 60, f"the {SLIDER_LABEL!r} slider", lab,
              arg=[SLIDER_LABEL])
        page.wait_for_timeout(1500)  # let images decode and the NGL stage draw its first frame
        before = page.evaluate(_MARK, [SLIDER_LABEL, READOUT_TEXT])
        for key in ("handle", "readout", "figure", "canvas"):
            assert before.get(key), f"explorer element {key!r} not found in the page: {before}"
        text = page.locator(".jp-Notebook").inner_text()
        problems = sorted(set(_WIDGET_PROBLEMS.findall(text)))
        assert not problems, f"widget rendering problems shown in the notebook: {problems}"

        cell = page.locator(".jp-Cell", has=page.locator("[data-nanonb=slider]"))
        cell.locator(".jp-Cell-outputArea").screenshot(path=str(art / "02_explorer_before.png"))
        fig_before = page.locator("[data-nanonb=figure]").screenshot(path=str(art / "03_figure_before.png"))

        # nglview: the WebGL canvas must show atoms, not only background (poll: NGL draws asynchronously).
        # Drawn pixels = pixels that change when the canvas is hidden, so HTML laid over it (the legend)
        # does not count.
        canvas = page.locator("[data-nanonb=canvas]")
        canvas.scroll_into_view_if_needed()
        drawn, deadline = 0.0, time.monotonic() + 30
        while time.monotonic() < deadline:
            drawn = _canvas_drawn_fraction(page, canvas, art / "05_nglview_canvas.png")
            if drawn > 0.02:
                break
            page.wait_for_timeout(1000)
        assert drawn > 0.02, f"nglview canvas looks empty: {drawn:.1%} of its pixels drawn (see {art})"

        # drag the "shots" handle to the right with the mouse
        t2 = time.monotonic()
        handle = page.locator("[data-nanonb=handle]")
        handle.scroll_into_view_if_needed()
        track = page.locator("[data-nanonb=slider] .noUi-target").bounding_box()
        box = handle.bounding_box()
        assert box and track, "slider handle or track has no bounding box"
        x0, y0 = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        x1 = min(x0 + 0.15 * track["width"], track["x"] + track["width"] - 1)
        page.mouse.move(x0, y0)
        page.mouse.down()
        page.mouse.move(x1, y0, steps=12)
        page.mouse.up()
        _wait(page, "([old]) => { const e = document.querySelector('[data-nanonb=readout]');"
                    " return !e || !e.isConnected || e.textContent.trim() !== old; }", 120,
              "the MAE readout to change after dragging the slider", lab, arg=[before["readoutText"]])
        _wait(page, f"() => {_KERNEL}.status === 'idle'", 120, "the kernel to become idle after the drag", lab)
        page.wait_for_timeout(1500)
        after = page.evaluate(_MARK, [SLIDER_LABEL, READOUT_TEXT])
        timings["drag_to_update_s"] = time.monotonic() - t2
        assert after.get("figure") and after.get("readout"), f"explorer elements lost after the drag: {after}"
        assert after["sliderValue"] != before["sliderValue"], f"slider did not move: {before} -> {after}"
        assert after["readoutText"] != before["readoutText"], "MAE readout unchanged after the drag"
        cell.locator(".jp-Cell-outputArea").screenshot(path=str(art / "02_explorer_after.png"))
        fig_after = page.locator("[data-nanonb=figure]").screenshot(path=str(art / "04_figure_after.png"))
        changed = _changed_fraction(fig_before, fig_after)
        # pixels, not the src attribute: an ipywidgets Image gets a new blob: URL even for identical bytes
        assert changed > 0.001, f"figure did not change after the drag (only {changed:.3%} of its pixels differ)"
        errors = page.evaluate(_CELL_ERRORS)
        assert not errors, f"cells raised after the drag: {errors}"
        page.screenshot(path=str(art / "06_final.png"))
    finally:
        timings["total_s"] = time.monotonic() - t0
        report = {"notebook": str(NOTEBOOK), "timings": timings, "blocked_requests": blocked,
                  "console_errors": console_errors[:50]}
        (art / "report.json").write_text(json.dumps(report, indent=1))
        context.close()
    print(json.dumps({"timings": timings, "slider": [before["sliderValue"], after["sliderValue"]],
                      "readout": [before["readoutText"], after["readoutText"]], "figure_changed": changed,
                      "nglview_drawn": drawn, "blocked": blocked}, indent=1))


# ------------------------------------------------------------------------ the Voilà workshop app
APP_NOTEBOOK = REPO_ROOT / "notebooks" / "app.ipynb"
#: what the app's verdict line always contains (nanonb.widgets.app)
VERDICT_TEXT = "measured cluster"


@pytest.fixture(scope="module")
def voila(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """Voilà on 127.0.0.1 serving a copy of ``notebooks/app.ipynb`` (token, isolated config dirs)."""
    try:
        import voila as _voila  # noqa: F401
    except ImportError:
        _skip_or_fail("voila is not installed (pip install 'nanonb[notebooks]')")
    tmp = tmp_path_factory.mktemp("voila")
    root = tmp / "root"
    root.mkdir()
    shutil.copy(APP_NOTEBOOK, root / APP_NOTEBOOK.name)
    token, port = secrets.token_hex(16), _free_port()
    log = tmp / "voila.log"
    cmd = [sys.executable, "-m", "voila", APP_NOTEBOOK.name, "--no-browser", f"--port={port}",
           "--Voila.ip=127.0.0.1", f"--token={token}", "--show_tracebacks=True"]
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, env=_lab_env(tmp), stdout=fh, stderr=subprocess.STDOUT, cwd=root,
                                start_new_session=True)
    server = Lab(proc, f"http://127.0.0.1:{port}", token, root, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"Voilà exited with code {proc.returncode}:\n{server.log_tail()}")
            try:  # a static file: answers as soon as the server is up, without starting a kernel
                urllib.request.urlopen(f"{server.url}/voila/static/voila.js", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"Voilà did not answer on {server.url} within 60 s:\n{server.log_tail()}")
                time.sleep(0.3)
        yield server
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # our own session: the server and its kernel
                proc.wait(timeout=10)


_APP_STATE = """([label, verdict]) => {
  const s = [...document.querySelectorAll('.widget-hslider')].find(e => {
    const l = e.querySelector('.widget-label'); return l && l.textContent.trim() === label; });
  const v = [...document.querySelectorAll('.widget-html')].find(e => e.textContent.includes(verdict));
  const sug = [...document.querySelectorAll('.widget-html')].find(e => e.textContent.includes('Next experiment'));
  return {slider: !!s, value: s ? (s.querySelector('.widget-readout') || {}).textContent : null,
          verdict: v ? v.textContent.trim() : null, suggestion: sug ? sug.textContent.trim() : null};
}"""


def test_workshop_app_in_voila(voila: Lab, browser) -> None:
    """The no-code app as a workshop participant meets it: Voilà renders it, the slider drives it."""
    if not APP_NOTEBOOK.is_file():
        pytest.fail(f"{APP_NOTEBOOK} not found")
    art = _artifact_dir()
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    page = context.new_page()
    blocked: list[str] = []

    def only_loopback(route) -> None:
        if re.match(r"^(data:|blob:|https?://(127\.0\.0\.1|localhost)(:\d+)?/)", route.request.url):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    page.route("**/*", only_loopback)
    try:
        page.goto(f"{voila.url}/?token={voila.token}", timeout=RUN_TIMEOUT_S * 1000)
        _wait(page, "([l, v]) => { const s = (" + _APP_STATE + ")([l, v]); return s.slider && !!s.verdict; }",
              RUN_TIMEOUT_S, "the app's shots slider and verdict", voila, arg=[SLIDER_LABEL, VERDICT_TEXT])
        timings["load_to_app_s"] = time.monotonic() - t0
        page.wait_for_timeout(1500)
        page.screenshot(path=str(art / "app_01_loaded.png"), full_page=True)
        text = page.locator("body").inner_text()
        problems = sorted(set(_WIDGET_PROBLEMS.findall(text)))
        assert not problems, f"widget rendering problems shown by Voilà: {problems}"
        assert "Traceback" not in text and "Error" not in text.split("For the teacher")[0], text[:2000]
        before = page.evaluate(_APP_STATE, [SLIDER_LABEL, VERDICT_TEXT])
        assert before["suggestion"], f"no next-experiment suggestion shown: {before}"
        figure = page.locator(".nanonb-adaptation-explorer img.widget-image").first
        fig_before = figure.screenshot(path=str(art / "app_02_figure_before.png"))

        t1 = time.monotonic()
        slider = page.locator(".widget-hslider", has=page.locator(".widget-label", has_text=SLIDER_LABEL)).first
        handle, track = slider.locator(".noUi-handle"), slider.locator(".noUi-target").bounding_box()
        handle.scroll_into_view_if_needed()
        box = handle.bounding_box()
        assert box and track, "slider handle or track has no bounding box"
        x0, y0 = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(x0, y0)
        page.mouse.down()
        page.mouse.move(min(x0 + 0.25 * track["width"], track["x"] + track["width"] - 1), y0, steps=12)
        page.mouse.up()
        _wait(page, "([l, v, old]) => { const s = (" + _APP_STATE + ")([l, v]); return s.verdict && "
                    "s.verdict !== old; }", 120, "the verdict to change after dragging the slider", voila,
              arg=[SLIDER_LABEL, VERDICT_TEXT, before["verdict"]])
        page.wait_for_timeout(1500)
        timings["drag_to_update_s"] = time.monotonic() - t1
        after = page.evaluate(_APP_STATE, [SLIDER_LABEL, VERDICT_TEXT])
        assert after["value"] != before["value"], f"slider did not move: {before} -> {after}"
        fig_after = figure.screenshot(path=str(art / "app_03_figure_after.png"))
        changed = _changed_fraction(fig_before, fig_after)
        assert changed > 0.001, f"figure did not change after the drag (only {changed:.3%} of its pixels differ)"
        page.screenshot(path=str(art / "app_04_after.png"), full_page=True)
    finally:
        timings["total_s"] = time.monotonic() - t0
        (art / "app_report.json").write_text(json.dumps({"timings": timings, "blocked_requests": blocked},
                                                         indent=1))
        context.close()
    print(json.dumps({"timings": timings, "slider": [before["value"], after["value"]],
                      "verdict": [before["verdict"], after["verdict"]], "figure_changed": changed,
                      "blocked": blocked}, indent=1))
