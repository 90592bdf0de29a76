"""The course as a student sees it: `make lab` in headless Chromium, notebook 01 opened from notebooks/.

The test starts make lab's server, opens notebooks/01_activations/activations.ipynb, runs the setup
cell, types a typical wrong sigmoid into its answer cell and runs the test cell (the named mistake must
appear), then a right one and the experiment that follows (a plot must appear). It checks rendered
math, that neither the news pop-up nor nbgrader's Lab extensions (Validate button, menus) show, and
that the browser console has no errors. Screenshots go to the test's tmp folder and /tmp/browser-shot.png.

Chromium and its driver come from the distribution (apt-get install chromium chromium-driver), driven
by selenium; nothing downloads a browser. Without them the test skips; with CI=true it fails instead.
The test's browser profile has autosave off (its own JupyterLab user-settings folder), so the
notebook on disk is never written.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = "notebooks/01_activations/activations.ipynb"
TOKEN = "course-browser-test-token"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
WRONG = "def sigmoid_forward(x): return 1 / (1 + np.exp(x)), None"
RIGHT = ("sigmoid_forward = lambda x: (special.expit(x),) * 2; "
         "sigmoid_backward = lambda dout, cache: dout * cache * (1 - cache)")
# Console messages that are not errors of the course or its extensions (none so far).
HARMLESS: tuple[str, ...] = ()

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def _missing():
    missing = [name for name, found in (("chromium", CHROMIUM), ("chromium-driver", DRIVER)) if not found]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip, requirements.txt)")
    return missing


@pytest.fixture(scope="module")
def browser_ok():
    missing = _missing()
    if missing:
        message = (f"browser test skipped: {', '.join(missing)} not installed "
                   f"(apt-get install chromium chromium-driver; .ci/run does it)")
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI=true, and the {message}")
        pytest.skip(message)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path, browser_ok):
    """make lab on a free port, with a test-only user-settings folder (autosave off, every cell attached)."""
    settings = tmp_path / "user-settings"
    (settings / "@jupyterlab" / "docmanager-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "docmanager-extension" / "plugin.jupyterlab-settings").write_text(
        json.dumps({"autosave": False}))
    (settings / "@jupyterlab" / "notebook-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings").write_text(
        json.dumps({"windowingMode": "none"}))
    port = _free_port()
    env = {**os.environ, "JUPYTER_TOKEN": TOKEN, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(settings), "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces")}
    env.pop("MPLBACKEND", None)  # make test's Agg would reach the kernel: Lab shows plots inline
    checkpoints = REPO / NOTEBOOK.rsplit("/", 1)[0] / ".ipynb_checkpoints"  # Lab makes one on opening
    had_checkpoints = checkpoints.exists()
    proc = subprocess.Popen(["make", "-s", "lab", f"PORT={port}"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"make lab ended: {proc.stdout.read()}")
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                raise AssertionError("make lab did not answer within 120 s")
            time.sleep(0.5)
        yield base
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        if not had_checkpoints:
            shutil.rmtree(checkpoints, ignore_errors=True)


@pytest.fixture
def driver(tmp_path, browser_ok):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000", f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(executable_path=DRIVER, log_output=str(tmp_path / "chromedriver.log")),
                         options=options)
    try:
        yield d
    finally:
        d.quit()


def _wait(d, what, seconds=60, message=""):
    deadline = time.time() + seconds
    while time.time() < deadline:
        found = what()
        if found:
            return found
        time.sleep(0.25)
    raise AssertionError(message or f"waited {seconds} s")


def _cells(d):
    return d.find_elements("css selector", ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")


def _code_cell(d, starts_with):
    for cell in _cells(d):
        if "jp-CodeCell" in cell.get_attribute("class"):
            text = cell.find_element("css selector", ".cm-content").get_attribute("textContent")
            if text.lstrip().startswith(starts_with):
                return cell
    raise AssertionError(f"no code cell starting with {starts_with!r} in {NOTEBOOK}")


def _output(cell):
    return cell.find_element("css selector", ".jp-Cell-outputArea").get_attribute("textContent")


def _run(d, cell, replace_with=None):
    """Click into a cell, optionally replace its text (as a student types it), run it with Shift+Enter,
    and wait until its prompt shows an execution count."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    d.execute_script("arguments[0].scrollIntoView({block: 'center'})", cell)
    editor = cell.find_element("css selector", ".cm-content")
    editor.click()
    actions = ActionChains(d)
    if replace_with is not None:
        actions.key_down(Keys.CONTROL).send_keys("a").key_up(Keys.CONTROL).send_keys(replace_with)
    actions.key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).perform()
    if replace_with is not None:
        typed = editor.get_attribute("textContent")
        assert typed == replace_with, f"the editor holds {typed!r}, not what was typed"

    def done():
        prompt = cell.find_element("css selector", ".jp-InputArea-prompt").get_attribute("textContent")
        return prompt.strip() not in ("[ ]:", "[*]:", "") and "*" not in prompt
    _wait(d, done, 300, f"cell {editor.get_attribute('textContent')[:60]!r} did not finish within 300 s (a loaded machine?)")


def _console_errors(d, save_to):
    """The console's errors (all its messages are saved as an artefact)."""
    logs = d.get_log("browser")
    save_to.write_text(json.dumps(logs, indent=1))
    return [e for e in logs if e["level"] == "SEVERE" and not any(h in e["message"] for h in HARMLESS)]


def test_a_student_runs_notebook_01_in_the_browser(lab, driver, tmp_path):
    d = driver
    d.get(f"{lab}/lab/tree/{NOTEBOOK}?token={TOKEN}")
    _wait(d, lambda: len(_cells(d)) > 50, 120, "the notebook did not open within 120 s")
    _wait(d, lambda: d.find_elements("css selector", ".jp-Notebook-ExecutionIndicator[data-status='idle']"),
          300, "the kernel did not become idle within 300 s")

    # rendered math in the markdown (MathJax), no raw $...$ left in the rendered cells
    _wait(d, lambda: d.find_elements("css selector", ".jp-MarkdownCell .jp-RenderedMarkdown mjx-container"),
          60, "no rendered math (mjx-container) in the markdown cells")

    # the setup cell, then a typical mistake in sigmoid_forward and its test cell: the mistake is named
    _run(d, _code_cell(d, "%matplotlib inline"))
    answer = _code_cell(d, "def sigmoid_forward")
    _run(d, answer, replace_with=WRONG)
    test = _code_cell(d, "x = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])")
    _run(d, test)
    failure = _output(test)
    assert "AssertionError" in failure and "you used exp(x) instead of exp(-x)" in failure, failure[:2000]
    assert "def sigmoid_forward" not in failure, "the failure shows a cell's source instead of its message"
    d.execute_script("arguments[0].scrollIntoView({block: 'end'})", test.find_element("css selector", ".jp-Cell-outputArea"))
    time.sleep(0.5)
    shot = tmp_path / "notebook-01-failure.png"
    d.save_screenshot(str(shot))
    shutil.copy(shot, "/tmp/browser-shot.png")

    # a right answer passes, and the next experiment draws its plot
    _run(d, answer, replace_with=RIGHT)
    _run(d, test)
    assert "sigmoid: visible tests passed" in _output(test), _output(test)[:2000]
    experiment = _code_cell(d, "xs = np.linspace(-10, 10, 2001)")
    _run(d, experiment)
    assert "largest derivative on the grid: 0.250000" in _output(experiment), _output(experiment)[:2000]
    imgs = experiment.find_elements("css selector", ".jp-RenderedImage img")
    assert imgs and imgs[0].get_attribute("src").startswith("data:image/png"), "the experiment shows no plot"
    _wait(d, lambda: d.execute_script("return arguments[0].naturalWidth", imgs[0]) > 100, 20, "the plot is empty")
    d.execute_script("arguments[0].scrollIntoView({block: 'end'})", imgs[0])
    time.sleep(0.5)
    d.save_screenshot(str(tmp_path / "notebook-01-plot.png"))

    # what must not show: the news pop-up and nbgrader's Lab extensions (students use `grader check`)
    page = d.find_element("css selector", "body").get_attribute("textContent")
    assert "official Jupyter news" not in page, "the 'notified about official Jupyter news?' pop-up shows"
    assert not d.find_elements("xpath", "//button[normalize-space(.)='Validate']"), "nbgrader's Validate button shows"
    menus = [m.text for m in d.find_elements("css selector", ".lm-MenuBar-itemLabel")]
    assert menus and not any("nbgrader" in m.lower() for m in menus), menus

    errors = _console_errors(d, tmp_path / "console.json")
    assert not errors, "errors in the browser console:\n" + "\n".join(e["message"] for e in errors)
