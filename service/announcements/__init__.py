"""Announcements to residents in their own languages (issue 21, item 4)."""
