"""Referrals of a resident's case, call-back or inbox item to a partner organization."""
