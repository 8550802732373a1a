"""The dashboard's plumbing: the signed session, CSRF tokens, who is logged in, and drawing
a page with the staff member's language.

- The session is Starlette's signed cookie (HttpOnly, SameSite=Lax, Secure behind HTTPS),
  holding only the user id, the CSRF token, the chosen language and one-time notices.
- Every form carries the session's CSRF token and every POST checks it before anything else.
- Roles are the API's: a viewer sees, a coordinator or admin acts. Pages hide the action
  forms from viewers, and the POST routes refuse them with 403 all the same.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode, urlsplit

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from service.auth.deps import is_current_version
from service.auth.models import Role, User
from service.db import SessionDep
from service.registry.models import Organization
from service.registry.phones import display_phone
from service.web import labels
from service.web.actors import describe_actor, is_member_label
from service.web.translation import DEFAULT_UI_LANGUAGE, UI_LANGUAGES, UiText, pick_ui_language

WEB_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"
SESSION_COOKIE = "mimamori_session"
CSRF_FIELD = "csrf_token"
MAX_FORM_FIELD_BYTES = 40 * 1024 * 1024

# Private data: nothing from elsewhere, nothing cached, nothing framed.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


class LoginRequired(Exception):
    """No valid session: pages redirect to the login form, the live fragment answers 401."""


class Forbidden(Exception):
    """Logged in, but the role does not allow the action."""


class CsrfFailed(Exception):
    """A POST without the session's CSRF token: possibly forged by another site."""


def _static_version() -> str:
    digest = hashlib.sha256()
    for path in sorted(STATIC_DIR.glob("*")):
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


environment = Environment(
    loader=FileSystemLoader(TEMPLATES_DIR),
    autoescape=select_autoescape(["html", "svg"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.globals["labels"] = labels
environment.globals["actor_name"] = describe_actor
environment.globals["is_member_label"] = is_member_label
environment.filters["phone"] = display_phone
environment.globals["static_version"] = _static_version()
environment.globals["ui_languages"] = UI_LANGUAGES
# Each language is offered in its own name, so anyone can find theirs.
environment.globals["ui_language_names"] = {"ja": "日本語", "en": "English"}


def page_url(request: Request, number: int) -> str:
    params = dict(request.query_params)
    params["page"] = str(number)
    return f"{request.url.path}?{urlencode(params)}"


def section(path: str) -> str:
    """Which entry of the main navigation a path belongs to."""
    for prefix, name in (
        ("/cases", "cases"),
        ("/inbox", "inbox"),
        ("/rounds", "rounds"),
        ("/schedules", "rounds"),
        ("/registry", "registry"),
        ("/residents", "registry"),
        ("/visits", "cases"),
        ("/audit", "audit"),
        ("/people", "people"),
        ("/announcements", "announcements"),
    ):
        if path.startswith(prefix):
            return name
    return "board"


environment.globals["page_url"] = page_url
environment.globals["section"] = section


# --- Session pieces ---------------------------------------------------------------------------


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str) or len(token) < 32:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


async def check_csrf(request: Request) -> None:
    """A dependency of every POST route; it runs before the route touches anything."""
    expected = request.session.get("csrf")
    # The import preview carries the uploaded file in a hidden field; allow it here (the
    # first parse of the body sets the limits for the whole request).
    form = await request.form(max_part_size=MAX_FORM_FIELD_BYTES)
    sent = form.get(CSRF_FIELD)
    if (
        not isinstance(expected, str)
        or not isinstance(sent, str)
        or not hmac.compare_digest(expected.encode(), sent.encode())
    ):
        raise CsrfFailed


CsrfChecked = Depends(check_csrf)


def ui_language(request: Request) -> str:
    return pick_ui_language(request.session.get("lang", DEFAULT_UI_LANGUAGE))


def flash(request: Request, kind: str, message: str, **values: str) -> None:
    """A notice for the next page drawn (after a redirect): kind is "ok" or "error"."""
    notices = list(request.session.get("flash", []))
    notices.append([kind, message, {k: str(v) for k, v in values.items()}])
    request.session["flash"] = notices[-5:]


def _pop_flashes(request: Request) -> list[tuple[str, str, dict[str, str]]]:
    notices = request.session.pop("flash", [])
    return [(kind, message, values) for kind, message, values in notices]


def safe_next(value: str | None, default: str = "/") -> str:
    """Only local paths: a login link must never bounce a user to another site."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return default


def login_url(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"/login?next={quote(target, safe='')}"


# --- Who is logged in -------------------------------------------------------------------------


@dataclass
class Staff:
    user: User
    org: Organization
    text: UiText

    @property
    def can_act(self) -> bool:
        return Role(self.user.role).level >= Role.coordinator.level

    @property
    def organization_id(self) -> uuid.UUID:
        return self.org.id


def current_staff(request: Request, session: SessionDep) -> Staff:
    raw = request.session.get("uid")
    try:
        user_id = uuid.UUID(str(raw))
    except ValueError:
        raise LoginRequired from None
    user = session.get(User, user_id)
    if (
        user is None
        or not user.is_active
        or str(user.organization_id) != request.session.get("org")
        or not is_current_version(user, request.session.get("ver"))
    ):
        request.session.pop("uid", None)
        raise LoginRequired
    org = session.get(Organization, user.organization_id)
    if org is None:
        raise LoginRequired
    return Staff(user=user, org=org, text=UiText(ui_language(request), org.timezone))


def acting_staff(staff: Annotated[Staff, Depends(current_staff)]) -> Staff:
    if not staff.can_act:
        raise Forbidden
    return staff


StaffDep = Annotated[Staff, Depends(current_staff)]
ActingStaff = Annotated[Staff, Depends(acting_staff)]


def log_in(request: Request, user: User) -> None:
    """A fresh session for the new login (a new CSRF token), keeping the chosen language."""
    language = ui_language(request)
    request.session.clear()
    request.session.update(
        {
            "uid": str(user.id),
            "org": str(user.organization_id),
            "ver": user.token_version,  # a logout or a new password ends this session
            "lang": language,
            "csrf": secrets.token_urlsafe(32),
        }
    )


def log_out(request: Request) -> None:
    language = ui_language(request)
    request.session.clear()
    request.session["lang"] = language


# --- Drawing pages ----------------------------------------------------------------------------


def _return_path(request: Request) -> str:
    """Where the language switch and "refresh" come back to: this page, or for a page drawn
    in answer to a form (a preview), the page that held the form."""
    if request.method == "GET":
        return request.url.path + (f"?{request.url.query}" if request.url.query else "")
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc == request.url.netloc and referer.path:
        return safe_next(referer.path + (f"?{referer.query}" if referer.query else ""))
    return "/"


def render_page(
    request: Request,
    template: str,
    *,
    staff: Staff | None = None,
    status_code: int = 200,
    default_timezone: str = "Asia/Tokyo",
    **context: Any,
) -> HTMLResponse:
    text = staff.text if staff else UiText(ui_language(request), default_timezone)
    html = environment.get_template(template).render(
        request=request,
        _=text.gettext,
        t=text,
        staff=staff,
        csrf_token=csrf_token(request),
        flashes=_pop_flashes(request),
        current_path=_return_path(request),
        **context,
    )
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)
