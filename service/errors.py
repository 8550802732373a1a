"""Domain errors that the API turns into clear 4xx responses naming the field and the problem."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


class DomainError(Exception):
    status_code = 400
    kind = "error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_detail(self) -> list[dict[str, object]]:
        loc: list[str] = ["body", self.field] if self.field else ["body"]
        return [{"loc": loc, "msg": self.message, "type": self.kind}]


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


def install_error_handlers(app: FastAPI) -> None:
    async def handle(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DomainError)
        if isinstance(exc, NotFound):
            return JSONResponse({"detail": exc.message}, status_code=404)
        return JSONResponse({"detail": exc.to_detail()}, status_code=exc.status_code)

    app.add_exception_handler(DomainError, handle)
