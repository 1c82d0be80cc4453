"""``selfie-avatar sliders RUN``: the slider panel of notebook 04 as a web app on this machine, served by Voila.

Why Voila: it is the Jupyter project's own way to turn a notebook's widgets into a web page. It runs the notebook
on a kernel and renders only its outputs, so the page is the very ipywidgets panel (:class:`SliderPanel`) the
notebook shows, with ipywidgets' and plotly's own front-end code; nothing is re-implemented in JavaScript.

The served notebook is written at start into a temporary folder and holds one call, :func:`show_app`; the logic
stays in the package. Before any server starts, the run folder, its checkpoint and its subject are opened here,
so a wrong path is one line, not a page with a traceback.

    selfie-avatar sliders RUN [--checkpoint best] [--host 127.0.0.1] [--port 0] [--no-browser]
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from selfie_avatar.config import SlidersConfig
from selfie_avatar.errors import SelfieAvatarError
from selfie_avatar.utils.log import get_logger

log = get_logger("sliders")

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
TEMPLATE = "selfie_avatar"
TEMPLATE_ROOT = Path(__file__).resolve().parent  # holds voila/templates/selfie_avatar/


def show_app(run_dir: str, checkpoint: str = "best", device: str = "auto", mesh_view: bool = True):
    """Build and display the slider panel of a run (what the served notebook calls).

    Returns:
        The :class:`~selfie_avatar.viz.slider_panel.SliderPanel`.
    """
    from IPython.display import display

    from selfie_avatar.reenact.avatar_renderer import AvatarRenderer
    from selfie_avatar.training.checkpoint import open_run
    from selfie_avatar.utils.device import resolve_device
    from selfie_avatar.utils.threads import adapt_threads
    from selfie_avatar.viz.slider_panel import SliderPanel

    adapt_threads()  # the kernel is a process of its own: as every command does (utils/threads.py)
    run = open_run(run_dir, checkpoint, resolve_device(device))
    renderer = AvatarRenderer(run.avatar, run.subject.face_model(), run.subject.size)
    panel = SliderPanel(renderer, run.subject, mesh_view=mesh_view)
    display(panel.widget)
    return panel


def app_notebook(cfg: SlidersConfig) -> dict:
    """The notebook Voila serves: one cell calling :func:`show_app` with the run's absolute path."""
    args = dict(run_dir=str(Path(cfg.run_dir).resolve()), checkpoint=cfg.checkpoint, device=cfg.device,
                mesh_view=cfg.mesh_view)
    source = ("from selfie_avatar.viz.slider_app import show_app\n"
              f"panel = show_app({', '.join(f'{k}={v!r}' for k, v in args.items())})")
    return {"nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                         "language_info": {"name": "python"}},
            "cells": [{"cell_type": "code", "id": "slider-app", "metadata": {}, "execution_count": None,
                       "outputs": [], "source": source}]}


def free_port(host: str, port: int = 0) -> int:
    """``port`` when it can be listened on at ``host``, or any free port for 0.

    Raises:
        SelfieAvatarError: ``port`` is taken (or ``host`` is not an address of this machine).
    """
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.bind((host, port))
            return int(s.getsockname()[1])
    except OSError as exc:
        raise SelfieAvatarError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port, or 0 "
                                f"for a free one") from exc


def check_run(cfg: SlidersConfig) -> None:
    """Open the run as the app will, in this process, before starting a server.

    Raises:
        SelfieAvatarError: no run folder, no such checkpoint, or a damaged subject folder; Voila not installed.
    """
    if not cfg.run_dir:
        raise SelfieAvatarError("sliders needs a run folder (RUN_DIR), written by `selfie-avatar train`")
    from selfie_avatar.training.checkpoint import open_run

    open_run(cfg.run_dir, cfg.checkpoint, "cpu")
    try:
        import voila  # noqa: F401
    except ImportError as exc:
        raise SelfieAvatarError("the slider app needs Voila and JupyterLab's widgets: pip install -e '.[notebooks]'") \
            from exc


def start_server(cfg: SlidersConfig, folder: Path, log_file=None) -> tuple[subprocess.Popen, str]:
    """Write the app notebook into ``folder`` and start Voila on it; return the process and the app's URL once it
    answers.

    Raises:
        SelfieAvatarError: the server exited or did not answer within two minutes (its log's end is in the message).
    """
    nb = folder / "sliders.ipynb"
    nb.write_text(json.dumps(app_notebook(cfg)))
    port = free_port(cfg.host, cfg.port)
    cmd = [sys.executable, "-m", "voila", str(nb), f"--port={port}", f"--Voila.ip={cfg.host}", "--no-browser",
           "--Voila.port_retries=0", "--show_tracebacks=True", "--theme=light", f"--template={TEMPLATE}"]
    # The template (Voila's lab template without its CDN links) is found through the Jupyter data path.
    jupyter_path = os.pathsep.join(p for p in (str(TEMPLATE_ROOT), os.environ.get("JUPYTER_PATH", "")) if p)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "JUPYTER_PATH": jupyter_path}
    # Its own session: Ctrl-C in the terminal reaches only this process, which then stops the server without
    # Jupyter's "Shutdown this server (y/[n])?" prompt.
    proc = subprocess.Popen(cmd, cwd=folder, env=env, stdout=log_file or subprocess.DEVNULL,
                            stderr=subprocess.STDOUT if log_file else subprocess.DEVNULL, start_new_session=True)
    url = f"http://{'[' + cfg.host + ']' if ':' in cfg.host else cfg.host}:{port}/"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SelfieAvatarError(f"the Voila server exited with code {proc.returncode} before answering"
                                        + _log_tail(log_file))
            try:
                # A static file: asking for the page itself would start a kernel and run the app for nobody.
                with urllib.request.urlopen(url + "voila/static/voila.js", timeout=2):
                    return proc, url
            except (urllib.error.URLError, ConnectionError, socket.timeout):
                time.sleep(0.3)
        raise SelfieAvatarError(f"the Voila server did not answer at {url} within two minutes" + _log_tail(log_file))
    except BaseException:  # Ctrl-C while waiting included: never leave a server behind
        stop_server(proc)
        raise


def _log_tail(log_file) -> str:
    if log_file is None or not hasattr(log_file, "name"):
        return ""
    try:
        tail = Path(log_file.name).read_text(errors="replace").strip().splitlines()[-3:]
    except OSError:
        return ""
    return (": " + " | ".join(tail)) if tail else ""


def stop_server(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Stop the server and its kernels (SIGTERM to its process group, then SIGKILL)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def serve(cfg: SlidersConfig) -> None:
    """Check the run, start the app, print its URL, open a browser where there is one, and wait for Ctrl-C."""
    check_run(cfg)
    if cfg.host not in LOCAL_HOSTS:
        log.warning("listening on %s: anyone who can reach this machine can open the app", cfg.host)
    # SIGTERM (kill, a closing terminal, a process manager) stops the server too, as Ctrl-C does.
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        _serve(cfg)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _serve(cfg: SlidersConfig) -> None:
    with tempfile.TemporaryDirectory(prefix="selfie-avatar-sliders-") as tmp:
        server_log = open(Path(tmp) / "voila.log", "w")
        proc, url = start_server(cfg, Path(tmp), server_log)
        print(f"slider app for {cfg.run_dir}: {url}  (Ctrl-C stops it)", flush=True)
        if cfg.browser:
            _open_browser(url)
        try:
            while proc.poll() is None:
                time.sleep(0.5)
            raise SelfieAvatarError(f"the Voila server stopped (exit code {proc.returncode})" + _log_tail(server_log))
        except KeyboardInterrupt:
            print("stopping the slider app", flush=True)
        finally:
            stop_server(proc)
            server_log.close()


def _open_browser(url: str) -> None:
    import webbrowser

    try:
        webbrowser.get()
    except webbrowser.Error:
        log.info("no web browser found here; open %s in one", url)
        return
    webbrowser.open(url)
