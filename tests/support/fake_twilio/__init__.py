"""A Twilio-compatible server on loopback, in a process of its own (see ``server.py``)."""

from tests.support.fake_twilio.handle import FakeTwilioProcess
from tests.support.fake_twilio.server import FakeConfig

__all__ = ["FakeConfig", "FakeTwilioProcess"]
