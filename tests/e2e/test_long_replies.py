"""A reply over WhatsApp's 4,096 characters goes as consecutive parts of one message: one
id, one record that shows each part, and a failed part sent again alone."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import FIXED_ZAPW
from tests.e2e.stack import S, Stack, statuses
from tests.helpers import recipient, wait_until
from workers.tasks import send_message

pytestmark = pytest.mark.slow


def long_reply(paragraphs: int = 25, marker: str = "") -> str:
    """About 10,000 characters: `paragraphs` paragraphs of words, numbered, so a part's
    place in the reply shows, and `marker` in the middle one."""
    words = "the quick brown fox jumps over the lazy dog while zapa writes a long answer"
    body = [f"Paragraph {i:02d}. " + " ".join([words] * 5) + "." for i in range(paragraphs)]
    if marker:
        body[paragraphs // 2] += f" {marker}"
    return "\n\n".join(body)


def test_a_10000_character_reply_arrives_as_3_ordered_parts_of_one_record(e2e: Stack):
    text = long_reply()
    assert 9_500 <= len(text) <= 10_500
    to = recipient(900)
    message_id = send_message.delay(to=to, text=text, session="A").id
    after = send_message.delay(to=to, text="and a short one after", session="A").id

    record = e2e.wait_status(message_id, S.SENT)
    e2e.wait_status(after, S.SENT)
    sends = [send for send in e2e.sim.sends("A") if send.body["to"] == to]
    texts = [send.body["text"] for send in sends]
    assert len(texts) == 4
    parts, last = texts[:3], texts[3]
    assert last == "and a short one after"  # after every part: the parts went consecutively
    assert all(len(part) <= 4096 for part in parts)
    # In order and whole: joined again at the cuts, the parts are the reply, no word cut.
    assert "\n\n".join(parts) == text
    assert [part.split(".")[0] for part in parts] == sorted(part.split(".")[0] for part in parts)
    assert [p["id"] for p in record.parts] == [send.message_id for send in sends[:3]]
    assert {p["status"] for p in record.parts} == {"sent"}
    assert record.bridge_message_id == sends[2].message_id
    assert record.as_dict()["parts"] == record.parts


def test_a_part_answered_500_is_sent_again_without_resending_the_others(e2e: Stack):
    text = long_reply(marker="MIDDLE-PART-MARKER")
    e2e.sim.set_faults(failing_text="MIDDLE-PART-MARKER", failing_text_times=1,
                       failure_status=500, failure_error="Failed to send message")
    message_id = send_message.delay(to=recipient(901), text=text, session="A").id

    record = e2e.wait_status(message_id, S.SENT, timeout=30)
    texts = [send.body["text"] for send in e2e.sim.sends("A")
             if send.body["to"] == recipient(901)]
    assert len(texts) == 3  # each part accepted once: the 500 was not accepted
    assert "\n\n".join(texts) == text
    assert "MIDDLE-PART-MARKER" in texts[1]
    assert e2e.sim.set_faults().failing_text_times == 0  # the fault was met
    notes = [entry["note"] for entry in record.history]
    assert any(note.startswith("retry in") for note in notes)
    assert "part 1 of 3 accepted by bridge" in notes
    assert record.failures == 0


@pytest.mark.worker_env(ZAPA_MAX_RETRIES="1")
def test_a_part_that_keeps_failing_makes_the_whole_message_a_dead_letter_naming_it(
        e2e: Stack):
    e2e.sim.set_faults(failing_text="STUCK-PART", failing_text_times=100,
                       failure_status=500, failure_error="Failed to send message")
    message_id = send_message.delay(to=recipient(902), text=long_reply(marker="STUCK-PART"),
                                    session="A").id

    record = e2e.wait_status(message_id, S.FAILED, timeout=30)
    assert record.reason is not None and record.reason.startswith("gave up after")
    assert "part 2 of 3" in record.reason
    assert [p["status"] for p in record.parts] == ["sent", "queued", "queued"]
    wait_until(lambda: len(e2e.sim.sends("A")) == 1, timeout=5, what="one part sent")


@pytest.mark.sim_config(**FIXED_ZAPW)
def test_receipts_move_each_part_and_the_record_follows_its_least_advanced_part(e2e: Stack):
    message_id = send_message.delay(to=recipient(903), text=long_reply(), session="A").id

    record = e2e.wait_status(message_id, S.READ, timeout=30)
    assert [p["status"] for p in record.parts] == ["read", "read", "read"]
    assert len({p["id"] for p in record.parts}) == 3
    assert statuses(record)[-2:] == ["delivered", "read"]  # once each, for the whole

