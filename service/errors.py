"""Domain errors that the API turns into clear 4xx responses naming the field and the problem.

A domain error says what is wrong as a :class:`~service.texts.Text`; the API renders it in
the language the request's ``Accept-Language`` prefers (Japanese or English, English when
it says neither), the command line in its own, the dashboard in the staff member's. The
JSON shape and the ``type`` codes are the same in every language.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.texts import Text, accept_language
from service.validation_text import localized_errors


class DomainError(Exception):
    status_code = 400
    kind = "error"

    def __init__(self, message: str | Text, *, field: str | None = None) -> None:
        if not isinstance(message, Text):
            message = Text("%(reason)s", {"reason": message})
        self.text = message
        self.message = str(self.text)  # English, for logs and for code that never shows it
        super().__init__(self.message)
        self.field = field

    def to_detail(self, language: str = "en") -> list[dict[str, object]]:
        loc: list[str] = ["body", self.field] if self.field else ["body"]
        return [{"loc": loc, "msg": self.text.render(language), "type": self.kind}]


class NotFound(DomainError):
    """Also what a record of another organization looks like: it does not exist for you."""

    status_code = 404
    kind = "not_found"


class Conflict(DomainError):
    status_code = 409
    kind = "conflict"


class Invalid(DomainError):
    status_code = 422
    kind = "value_error"


def install_error_handlers(app: FastAPI, *, login: Callable[..., Any]) -> None:
    """``login``: the dependency of routes that need a logged-in caller (their 401 and 409
    are declared); given by the application, since this module sits below auth."""

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DomainError)
        language = accept_language(request.headers.get("accept-language"))
        if isinstance(exc, NotFound):
            return JSONResponse({"detail": exc.text.render(language)}, status_code=404)
        return JSONResponse({"detail": exc.to_detail(language)}, status_code=exc.status_code)

    async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
        """FastAPI's own 422 answer, with each ``msg`` in the request's language."""
        assert isinstance(exc, RequestValidationError)
        language = accept_language(request.headers.get("accept-language"))
        detail = localized_errors(list(exc.errors()), language)
        return JSONResponse({"detail": jsonable_encoder(detail)}, status_code=422)

    async def http_error(request: Request, exc: Exception) -> Response:
        """An HTTP error whose detail is a text (401, 403, 429 from the auth layer) is said in
        the request's language; any other detail is FastAPI's answer, unchanged."""
        assert isinstance(exc, StarletteHTTPException)
        if isinstance(exc.detail, Text):
            language = accept_language(request.headers.get("accept-language"))
            return JSONResponse(
                {"detail": exc.detail.render(language)},
                status_code=exc.status_code,
                headers=exc.headers,
            )
        return await http_exception_handler(request, exc)

    app.add_exception_handler(DomainError, handle)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, http_error)

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        return declare_error_responses(app, generate(), login=login)

    app.openapi = openapi  # type: ignore[method-assign]


class ErrorResponse(BaseModel):
    """What every 4xx answer looks like: a sentence, or a list naming each field's problem."""

    detail: str | list[dict[str, Any]]


_MEANINGS: dict[int, str] = {
    400: "The body could not be read (not JSON, or not in the declared encoding).",
    401: "Not logged in, or the token has expired or been revoked.",
    403: "The caller's role does not allow this.",
    404: "No such record in the caller's organization.",
    409: "The change conflicts with a record or a state that already exists.",
}
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _dependency_calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _dependency_calls(sub)


def error_statuses(
    dependant: Dependant, methods: set[str], has_body: bool, *, login: Callable[..., Any]
) -> set[int]:
    """The 4xx answers a route can give, read from what it depends on: schemathesis checks
    every answer against the declared ones, and a client needs to know them too."""
    calls = list(_dependency_calls(dependant))
    statuses: set[int] = set()
    if login in calls:
        statuses.add(401)
        if methods & _WRITES:
            statuses.add(409)
    if any(getattr(call, "__qualname__", "").startswith("require_role.") for call in calls):
        statuses.add(403)
    if dependant.path_params:
        statuses.add(404)
    if has_body:
        statuses.add(400)
    return statuses


def _routes(app: FastAPI) -> Iterator[tuple[str, set[str], Dependant, bool]]:
    """Every route with its full path; FastAPI >= 0.160 keeps included routers as contexts."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: included routes are plain APIRoutes
        routes: Iterable[Any] = app.routes
    else:
        routes = iter_route_contexts(app.routes)
    for route in routes:
        dependant = getattr(route, "dependant", None)
        path = getattr(route, "path_format", None)
        methods = getattr(route, "methods", None)
        if isinstance(dependant, Dependant) and path and methods:
            has_body = getattr(route, "body_field", None) is not None
            yield path, set(methods), dependant, has_body


def declare_error_responses(
    app: FastAPI, schema: dict[str, Any], *, login: Callable[..., Any]
) -> dict[str, Any]:
    """Add the 4xx answers each API route can give to its OpenAPI description (a route's own
    declaration wins)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault("ErrorResponse", ErrorResponse.model_json_schema())
    reference = {"$ref": "#/components/schemas/ErrorResponse"}
    for path, methods, dependant, has_body in _routes(app):
        operations = schema.get("paths", {}).get(path, {})
        for method in methods:
            operation = operations.get(method.lower())
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            for code in sorted(error_statuses(dependant, methods, has_body, login=login)):
                responses.setdefault(
                    str(code),
                    {
                        "description": _MEANINGS[code],
                        "content": {"application/json": {"schema": reference}},
                    },
                )
    return schema
