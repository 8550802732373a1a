"""Telephony: the provider interface, Twilio, the console provider, TwiML and signatures.

Only the interface is re-exported here; import implementations from their modules so
that importing the package stays cheap.
"""

from service.telephony.errors import PermanentSendError, SendError, TransientSendError
from service.telephony.provider import (
    PROVIDERS,
    SendResult,
    TelephonyProvider,
    make_provider,
)

__all__ = [
    "PROVIDERS",
    "PermanentSendError",
    "SendError",
    "SendResult",
    "TelephonyProvider",
    "TransientSendError",
    "make_provider",
]
