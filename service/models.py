"""Import every table module so that SQLModel.metadata is complete (Alembic, tests)."""

from service.audit import models as audit_models  # noqa: F401
from service.auth import models as auth_models  # noqa: F401
from service.db import metadata
from service.registry import models as registry_models  # noqa: F401

__all__ = ["metadata"]
