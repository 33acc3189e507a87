"""A small aiohttp JSON target for benchmarks: GET /health -> {"status": "UP"}."""

from __future__ import annotations

import sys

from aiohttp import web


async def health(_request: web.Request) -> web.Response:
    return web.json_response({"status": "UP"})


def main() -> None:
    app = web.Application()
    app.router.add_get("/health", health)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
