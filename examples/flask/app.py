"""A small Flask app, unchanged from how one would write it without baton.

baton runs it under gunicorn, which takes the listening sockets baton passes (LISTEN_FDS) and
tells baton when it is up (READY=1); `/health` lets baton check the new workers really serve.
"""
import os
import time

from flask import Flask, request

app = Flask(__name__)


def _message():
    try:
        with open("hello.txt") as f:
            return f.readline().strip()
    except OSError:
        return "hello"


MESSAGE = _message()


def _instance_note():
    """Instance files (config, uploads) live outside the release: baton links `instance/` from
    its shared directory into every release (`[source] shared = ["instance/"]`)."""
    try:
        with open(os.path.join(app.instance_path, "note.txt")) as f:
            return f.readline().strip()
    except OSError:
        return "-"


@app.get("/")
def index():
    generation = os.environ.get("BATON_GENERATION", "0")
    return (
        f"pid={os.getpid()} generation={generation} message={MESSAGE} "
        f"instance={_instance_note()}\n"
    )


@app.get("/slow")
def slow():
    time.sleep(min(int(request.args.get("ms", "100")), 60_000) / 1000)
    return index()


@app.get("/health")
def health():
    return "ok\n"
