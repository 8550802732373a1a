"""The resident form's ordered channels: saved in order, an unknown one named in Japanese."""

from __future__ import annotations

from sqlmodel import Session, select

from service.auth.models import Role
from service.registry.models import Resident
from tests.checkins.conftest import World
from tests.web.conftest import FormClient, add_staff
from tests.web.test_registry_screens import RESIDENT_FORM, _count, _setup


def test_channels_are_saved_in_order_and_shown_again(forms: FormClient, world: World, engine):
    _setup(world)
    forms.login(add_staff(engine, Role.coordinator))
    response = forms.post(
        "/registry/residents", {**RESIDENT_FORM, "channels": "LINE, whatsapp, sms, voice"}
    )
    assert response.status_code == 303, response.text
    with Session(engine) as s:
        made = s.exec(select(Resident).where(Resident.name == RESIDENT_FORM["name"])).one()
        assert made.channels == ["line", "whatsapp", "sms", "voice"]
        rid = made.id
    page = forms.client.get(f"/residents/{rid}/edit")
    assert 'value="line, whatsapp, sms, voice"' in page.text


def test_an_unknown_channel_is_named_in_japanese_and_nothing_is_written(
    forms: FormClient, world: World, engine
):
    _setup(world)
    forms.login(add_staff(engine, Role.coordinator))
    before = _count(engine, Resident)
    response = forms.post("/registry/residents", {**RESIDENT_FORM, "channels": "line, fax"})
    assert response.status_code == 422
    assert 'data-field="channels"' in response.text
    assert "試す順に書いてください" in response.text
    assert _count(engine, Resident) == before
