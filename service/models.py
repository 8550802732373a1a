"""Import every table module so that SQLModel.metadata is complete (Alembic, tests)."""

from service.announcements import models as announcement_models  # noqa: F401
from service.audit import models as audit_models  # noqa: F401
from service.auth import models as auth_models  # noqa: F401
from service.checkins import models as checkin_models  # noqa: F401
from service.escalations import models as escalation_models  # noqa: F401
from service.jma import models as jma_models  # noqa: F401
from service.ops import models as ops_models  # noqa: F401
from service.partners import interpreters as partner_interpreters  # noqa: F401
from service.partners import models as partner_models  # noqa: F401
from service.referrals import models as referral_models  # noqa: F401
from service.registry import channels as registry_channels  # noqa: F401
from service.registry import models as registry_models  # noqa: F401
from service.tables import metadata
from service.telephony import models as telephony_models  # noqa: F401
from service.timeline import models as timeline_models  # noqa: F401
from service.translation import models as translation_models  # noqa: F401

__all__ = ["metadata"]
