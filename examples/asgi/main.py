"""A minimal ASGI app, no framework: what `docs/apps.md` runs under gunicorn's UvicornWorker or
uvicorn `--fd 3`, and what baton's steering tests reload under load.

`/` answers with the process and baton generation; `/health` is the readiness path.
"""

import os

GENERATION = os.environ.get("BATON_GENERATION", "?")


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    body = f"pid={os.getpid()} generation={GENERATION} path={scope['path']}\n".encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/plain"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
