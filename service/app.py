"""The FastAPI application: API, webhooks and (later) the dashboard."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text

from service import bootstrap, migrate
from service.announcements.views import router as announcements_router
from service.audit.views import router as audit_router
from service.auth.deps import get_current_user
from service.auth.views import router as auth_router
from service.checkins.views import router as checkins_router
from service.clock import get_clock
from service.common import aware
from service.config import get_settings
from service.db import get_engine
from service.errors import install_error_handlers
from service.jma.views import router as jma_router
from service.limits import BodyLimitMiddleware, NulRejectMiddleware
from service.metrics import install_metrics
from service.ops.models import Heartbeat
from service.partners.interpreter_views import router as interpreter_offers_router
from service.referrals.views import router as referrals_router
from service.registry.views import router as registry_router
from service.security_headers import SecurityHeadersMiddleware
from service.telephony.audio import router as voice_audio_router
from service.telephony.channel_views import api_router as app_channels_router
from service.telephony.channel_views import webhook_router as line_webhook_router
from service.telephony.intake import SmsIntakeMiddleware
from service.telephony.routing_views import router as routing_router
from service.telephony.webhooks import router as webhooks_router
from service.translation.views import router as translation_router
from service.web import install_dashboard

HEARTBEAT_MAX_AGE_SECONDS = 60


def create_app() -> FastAPI:
    app = FastAPI(
        title="Mimamori",
        summary="Disaster-time welfare checks for residents of temporary housing.",
        version="0.1.0",
    )
    bootstrap.wire()  # the outbox's hooks into check-ins (service/bootstrap.py)
    install_error_handlers(app, login=get_current_user)

    # Routes are matched in order: Twilio's webhooks (thousands a minute after an
    # earthquake round) and the liveness probe come first, before a hundred API routes.
    app.include_router(webhooks_router)
    app.include_router(voice_audio_router)  # public: Twilio fetches <Play> URLs
    app.include_router(line_webhook_router)  # signed by LINE (X-Line-Signature)

    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        """Liveness: the process is up. It deliberately does not touch the database."""
        return {"status": "ok"}

    api = APIRouter(prefix="/api/v1")
    api.include_router(auth_router)
    api.include_router(registry_router)
    api.include_router(audit_router)
    api.include_router(checkins_router)
    api.include_router(jma_router)
    api.include_router(translation_router)
    api.include_router(routing_router)
    api.include_router(app_channels_router)
    api.include_router(referrals_router)
    api.include_router(interpreter_offers_router)
    api.include_router(announcements_router)
    app.include_router(api)
    install_dashboard(app)  # the staff dashboard under / (service/web)

    @app.get(
        "/readyz",
        tags=["operations"],
        responses={503: {"description": "Not ready: the body's checks say which part."}},
    )
    def readyz() -> JSONResponse:
        checks: dict[str, str] = {}
        ready = True
        try:
            engine = get_engine()
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            checks["database"] = "ok"
            if migrate.is_current(engine):
                checks["migrations"] = "ok"
                checks["scheduler"] = _scheduler_check(engine)
                ready = ready and checks["scheduler"] == "ok"
            else:
                checks["migrations"] = "behind: run `mimamori db upgrade`"
                ready = False
        except Exception as exc:
            checks["database"] = f"unreachable: {type(exc).__name__}"
            ready = False
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    # A resident's signed SMS is answered by the batch, ahead of routing (intake.py).
    app.add_middleware(SmsIntakeMiddleware)
    install_metrics(app)  # GET /metrics, and webhook latency (service/metrics.py)
    # Outermost last: body limits bound every read below them, NULs are refused before any
    # route (service/limits.py), and every response gets the security headers.
    app.add_middleware(NulRejectMiddleware)
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(SecurityHeadersMiddleware, public_url=get_settings().public_url)

    return app


def _scheduler_check(engine) -> str:  # type: ignore[no-untyped-def]
    """The active scheduler writes a heartbeat every few seconds; silence means nobody is
    sweeping deadlines, and residents would fall through."""
    from sqlmodel import Session

    with Session(engine) as session:
        beat = session.get(Heartbeat, "scheduler")
    if beat is None:
        return "no heartbeat yet: is `mimamori scheduler` running?"
    age = (get_clock().now() - aware(beat.at)).total_seconds()  # type: ignore[operator]
    if age > HEARTBEAT_MAX_AGE_SECONDS:
        return f"stale: last heartbeat {int(age)} s ago"
    return "ok"
