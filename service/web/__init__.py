"""The staff dashboard: server-rendered pages under ``/``, Japanese first.

``install_dashboard(app)`` is the one call ``create_app`` makes: it adds the signed
session cookie, the static files, the pages, and the handlers that turn "not logged in",
"not allowed" and "forged form" into a redirect or a plain 403 page.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from service.config import get_settings
from service.web.core import (
    SESSION_COOKIE,
    STATIC_DIR,
    CsrfFailed,
    Forbidden,
    LoginRequired,
    login_url,
    render_page,
)
from service.web.translation import N_


def install_dashboard(app: FastAPI) -> None:
    from service.web.account import router as account_router
    from service.web.announcements import router as announcements_router
    from service.web.audit_screen import router as audit_router
    from service.web.inbox import router as inbox_router
    from service.web.interpreter_offers import router as interpreter_offers_router
    from service.web.member_screens import router as member_router
    from service.web.partners import router as partners_router
    from service.web.password_reset import router as reset_router
    from service.web.people import router as people_router
    from service.web.registry_screens import router as registry_router
    from service.web.round_report import router as report_router
    from service.web.views import router
    from service.web.visit_list import router as visit_router

    settings = get_settings()
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.secret_key,
        session_cookie=SESSION_COOKIE,
        max_age=settings.access_token_minutes * 60,
        same_site="lax",
        https_only=settings.public_url.startswith("https://"),
    )
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(router)
    app.include_router(inbox_router)
    app.include_router(interpreter_offers_router)  # before /partners/{id}/{action}
    app.include_router(account_router)
    app.include_router(audit_router)
    app.include_router(report_router)
    app.include_router(visit_router)
    app.include_router(registry_router)
    app.include_router(member_router)
    app.include_router(people_router)
    app.include_router(reset_router)
    app.include_router(partners_router)
    app.include_router(announcements_router)

    async def login_required(request: Request, _exc: Exception) -> Response:
        if request.url.path.startswith("/board/live"):
            return Response(status_code=401)  # the polling script reloads into the login
        if request.method != "GET":
            return RedirectResponse("/login", status_code=303)
        return RedirectResponse(login_url(request), status_code=303)

    async def forbidden(request: Request, _exc: Exception) -> HTMLResponse:
        return render_page(
            request,
            "error.html",
            status_code=403,
            title=N_("Not allowed"),
            message=N_("Your role can see this page but cannot change anything."),
        )

    async def csrf_failed(request: Request, _exc: Exception) -> HTMLResponse:
        return render_page(
            request,
            "error.html",
            status_code=403,
            title=N_("Not allowed"),
            message=N_(
                "This form had expired or did not come from this dashboard. "
                "Go back, reload the page and try again."
            ),
        )

    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(Forbidden, forbidden)
    app.add_exception_handler(CsrfFailed, csrf_failed)
