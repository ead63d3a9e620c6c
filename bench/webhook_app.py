"""The webhook route and its door as the dashboard's server mounts them, for
`uvicorn bench.webhook_app:app`.

Beside it, one route that answers at once without touching anything: the rate the HTTP
layer alone reaches on this machine, an upper bound for any per-event endpoint. With
BENCH_WEBHOOK_STORE_ONLY set, the intake stores bodies and answers but never applies them:
what storing costs, apart from applying.
"""

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from core.server import middleware
from core.webhook.route import webhook_routes

NOOP_PATH = "/bench/noop"


async def noop(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"ok": True})


if os.environ.get("BENCH_WEBHOOK_STORE_ONLY"):
    from core.webhook.intake import Intake

    Intake._apply_batch = lambda self, batches: None  # type: ignore[method-assign]

app = Starlette(routes=[*webhook_routes(), Route(NOOP_PATH, noop, methods=["POST"])],
                middleware=middleware())
