"""A real JupyterLab for browser tests and the panel benchmark, and Debian's Chromium to drive it.

JupyterLab runs on 127.0.0.1, on a free port, with a token, as root if need be, with throw-away
config/data/runtime folders and the news toast disabled; it is stopped through its process handle.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    process: subprocess.Popen
    log: Path

    def lab_url(self, path: str = "") -> str:
        return f"{self.url}/lab/tree/{path}?token={self.token}"

    def api(self, path: str, method: str = "GET", body: dict | None = None):
        request = urllib.request.Request(
            f"{self.url}/{path.lstrip('/')}", method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# A notebook's metadata naming its kernel: without it JupyterLab asks which kernel to start (a dialog
# over the page).
KERNEL = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _tree_build_first(workdir: Path) -> Path:
    """A folder whose nbscale is this tree's labextension build (nbscale/labextension), for
    `--LabApp.extra_labextensions_path`, which JupyterLab searches before every other folder: without
    it, an editable install's copy in the environment (made when it was installed) would be tested
    instead of what `jlpm build` last built."""
    folder = workdir / "labextensions"
    link = folder / "nbscale"
    folder.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        link.symlink_to(Path(__file__).resolve().parents[1] / "nbscale" / "labextension", target_is_directory=True)
    return folder


@contextmanager
def running_lab(root: Path, workdir: Path, timeout: float = 90.0, extra_args: tuple[str, ...] = (),
                settings: dict[str, dict] | None = None):
    """Start JupyterLab serving `root`; yields a Lab; stops it (and its children) on exit.

    `settings` maps a plugin's settings path (`nbscale/plugin`) to user settings for it.
    """
    config, data, runtime = (workdir / name for name in ("config", "data", "runtime"))
    for folder in (config, data, runtime):
        folder.mkdir(parents=True, exist_ok=True)
    settings_dir = config / "lab" / "user-settings"
    _write_json(settings_dir / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings",
                {"fetchNews": "false", "checkForUpdates": False})
    for plugin, values in (settings or {}).items():
        _write_json(settings_dir / f"{plugin}.jupyterlab-settings", values)
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(config), "JUPYTER_DATA_DIR": str(data),
           "JUPYTER_RUNTIME_DIR": str(runtime), "JUPYTERLAB_SETTINGS_DIR": str(settings_dir),
           "JUPYTERLAB_WORKSPACES_DIR": str(config / "lab" / "workspaces"), "PYTHONUNBUFFERED": "1"}
    env.pop("JUPYTER_TOKEN", None)
    log = workdir / "jupyterlab.log"
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
               "--ServerApp.allow_root=True", f"--ServerApp.root_dir={root}",
               "--LabApp.expose_app_in_browser=True",
               f"--LabApp.extra_labextensions_path={_tree_build_first(workdir)}", *extra_args]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    lab = Lab(url=f"http://127.0.0.1:{port}", token=token, root=root, process=process, log=log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {process.returncode}:\n{lab.log_tail()}")
            try:
                lab.api("api/status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"JupyterLab did not answer in {timeout:.0f} s:\n{lab.log_tail()}") from None
                time.sleep(0.25)
        yield lab
    finally:
        _stop(process)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()  # jupyter_server stops its extensions (runs, cluster) on SIGTERM
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    # run processes and Dask workers the server started stay in its process group
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass


@contextmanager
def browser_page(width: int = 1400, height: int = 900, timeout_ms: int = 30_000):
    """A Playwright page in headless Debian Chromium, `timeout_ms` for every wait. A script error
    from nbscale's code on the page (`page.nbscale_errors`) fails the test when the page closes."""
    from playwright.sync_api import sync_playwright

    # a missing browser fails the UI tests rather than skipping them (.ci/run installs it)
    assert CHROMIUM is not None, "the UI tests need Debian's chromium: apt-get install chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
            page = context.new_page()
            page.set_default_timeout(timeout_ms)
            page.nbscale_errors = []
            page.on("pageerror", lambda exc: page.nbscale_errors.append(str(exc)))
            yield page
            assert not [e for e in page.nbscale_errors if "nbscale" in e], page.nbscale_errors
        finally:
            browser.close()


# JupyterLab 4 creates every cell widget when the notebook loads, but as a placeholder that it
# renders and attaches to the page later, a few at a time in idle callbacks (windowing mode
# "contentVisibility", the default). The first `.jp-Cell` on the page says little: it may even be
# the empty cell shown before the file is read. Wait for the file's cells, all rendered.
NOTEBOOK_RENDERED = """(path) => {
    const panel = window.jupyterapp.shell.currentWidget;
    if (!panel || !panel.context || panel.context.path !== path || !panel.context.isReady) {
        return false;
    }
    const cells = panel.content.widgets;
    return cells.length === panel.content.model.cells.length
        && cells.every(c => !c.isPlaceholder());
}"""


def open_notebook(page, lab: Lab, path: str, timeout_ms: int = 60_000) -> None:
    """Open a notebook in JupyterLab and wait until every one of its cells is rendered."""
    page.goto(lab.lab_url(path), timeout=timeout_ms)
    page.wait_for_function("() => !!window.jupyterapp", timeout=timeout_ms)
    page.wait_for_function(NOTEBOOK_RENDERED, arg=path, timeout=timeout_ms)


def open_panel(page, timeout_ms: int = 30_000):
    """Open the nbscale sidebar the way a user does: its tab in the right sidebar."""
    tab = page.locator('.jp-SideBar.jp-mod-right .lm-TabBar-tab[data-id="nbscale-panel"]')
    tab.wait_for(timeout=timeout_ms)
    if "lm-mod-current" not in (tab.get_attribute("class") or ""):
        tab.click()
    panel = page.locator("#nbscale-panel")
    panel.wait_for(state="visible", timeout=timeout_ms)
    return panel


def execute(page, command: str, args: dict | None = None):
    return page.evaluate("([c, a]) => window.jupyterapp.commands.execute(c, a)", [command, args or {}])
