"""Everything Mimamori says, in the recipient's language.

Import from the modules, not from the package, e.g. ``from i18n.render import render``.
Nothing is re-exported here on purpose: a package attribute named ``render`` would
shadow the ``i18n.render`` module and break ``mock.patch("i18n.render.render")``.

- :mod:`i18n.languages`: the language registry and code normalization
- :mod:`i18n.messages`: message ids and the placeholders each one takes
- :mod:`i18n.render`: per-recipient rendering, dates and times
- :mod:`i18n.segments`: SMS encoding and segment counts
- :mod:`i18n.voice`: call prompts, voices and recorded audio
- :mod:`i18n.catalogs`: loading, compiling, updating and checking catalogs
- :mod:`i18n.status`: the data behind ``mimamori i18n status``
"""
