from sqlmodel import select

from service.checkins import flows
from service.checkins.models import CheckIn


def test_broadcast_reply_fine_closes(world):
    world.site("A団地")
    world.resident("R1", "090-1111-0001", site="A団地")
    world.member("M1", "090-9999-0001")
    world.assign("R1", "M1", 1)
    round_id = flows.start_broadcast(
        world.engine, organization_id=world.org_id, started_by="test", now_fn=world.clock.now
    )
    world.tick()
    sent = world.sent_to("+819011110001")
    assert len(sent) == 1 and sent[0].status == "sent", [(m.status, m.last_error) for m in sent]
    reply = world.sms("+819011110001", "1")
    assert "Message" in reply
    with world.session() as s:
        c = s.exec(select(CheckIn).where(CheckIn.round_id == round_id)).one()
        assert c.state == "ok"
