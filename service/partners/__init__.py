"""Partnerships between organizations on one installation (issue 21)."""
