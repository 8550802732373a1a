"""The resident's timeline: everything that happened to or for a resident, in order.

It sits below check-ins and escalations, which both write to it, and imports neither.
"""

from service.timeline.models import TimelineEvent, TimelineEventPublic
from service.timeline.service import timeline

__all__ = ["TimelineEvent", "TimelineEventPublic", "timeline"]
