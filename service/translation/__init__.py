"""Machine translation for staff: residents' replies into Japanese, answers back out.

Off unless ``MIMAMORI_TRANSLATION_PROVIDER`` names a provider; see ``provider.py``.
"""
