"""build_message: every malformed send request is refused with the field it got wrong."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from zapa_bridge.errors import InvalidMessage
from zapa_bridge.outbound.messages import (
    FIELD_NAMES,
    MAX_TEXT_CHARS,
    MessageType,
    OutboundMessage,
    Priority,
    build_message,
    check_field_names,
)

PHONE = "5511988887777"
PNG_BASE64 = "iVBORw0KGgo="  # the PNG signature, valid base64
IMAGE_URL = "https://cdn.example.com/cat.png"


def rejected_field(**given: Any) -> str:
    """Build a message that must be refused and return the field the refusal names."""
    with pytest.raises(InvalidMessage) as caught:
        build_message(**given)
    return caught.value.field


def text(**given: Any) -> dict[str, Any]:
    return {"to": PHONE, "text": "hello", "session": "s1"} | given


def image(**given: Any) -> dict[str, Any]:
    return {"to": PHONE, "type": "image", "media_url": IMAGE_URL, "session": "s1"} | given


def location(**given: Any) -> dict[str, Any]:
    base = {"to": PHONE, "type": "location", "latitude": -23.5, "longitude": -46.6,
            "session": "s1"}
    return base | given


# -- the error itself ------------------------------------------------------------------


def test_invalid_message_is_a_value_error_naming_field_and_reason():
    with pytest.raises(ValueError) as caught:
        build_message(**text(to="12ab5678"))

    assert isinstance(caught.value, InvalidMessage)
    assert caught.value.field == "to"
    assert str(caught.value).startswith("to: ")


# -- recipient --------------------------------------------------------------------------


def test_phone_with_non_digits_is_refused():
    assert rejected_field(**text(to="55 11 98888-7777")) == "to"


def test_phone_with_plus_prefix_is_refused():
    assert rejected_field(**text(to="+5511988887777")) == "to"


def test_phone_with_non_ascii_digits_is_refused():
    assert rejected_field(**text(to="٥٥١١٩٨٨٨٨٧٧٧٧")) == "to"


def test_phone_of_seven_digits_is_too_short():
    assert rejected_field(**text(to="1234567")) == "to"


def test_phone_of_sixteen_digits_is_too_long():
    assert rejected_field(**text(to="1234567890123456")) == "to"


def test_phones_of_eight_and_fifteen_digits_are_accepted():
    assert build_message(**text(to="12345678")).to == "12345678"
    assert build_message(**text(to="123456789012345")).to == "123456789012345"


def test_missing_recipient_is_refused():
    assert rejected_field(text="hello", session="s1") == "to"


def test_recipient_given_as_number_is_refused():
    assert rejected_field(**text(to=5511988887777)) == "to"


# -- type, priority, unknown fields ----------------------------------------------------


def test_type_defaults_to_text_and_priority_to_default():
    message = build_message(**text())

    assert message.type == MessageType.TEXT
    assert message.priority == Priority.DEFAULT


def test_unknown_type_is_refused():
    assert rejected_field(**text(type="sticker")) == "type"


def test_unknown_priority_is_refused():
    assert rejected_field(**text(priority="urgent")) == "priority"


def test_known_priority_is_accepted():
    assert build_message(**text(priority="high")).priority == Priority.HIGH


def test_unknown_keyword_field_is_refused_by_its_name():
    assert rejected_field(**text(body="hello")) == "body"


# -- text -------------------------------------------------------------------------------


def test_text_message_without_text_is_refused():
    assert rejected_field(to=PHONE, session="s1") == "text"


def test_empty_text_is_refused():
    assert rejected_field(**text(text="")) == "text"


def test_whitespace_only_text_is_refused():
    assert rejected_field(**text(text="  \n\t ")) == "text"


def test_text_of_4097_characters_is_refused_where_texts_may_not_be_split():
    assert rejected_field(**text(text="a" * (MAX_TEXT_CHARS + 1))) == "text"


def test_a_10000_character_text_is_one_message_of_3_parts_none_cut_in_a_word():
    words = " ".join(f"word{i:04d}" for i in range(1000))[:10_000].strip()
    message = build_message(**text(text=words), max_text_parts=10)
    assert message.text == words
    parts = message.parts
    assert parts is not None and len(parts) == 3
    assert all(len(part) <= MAX_TEXT_CHARS for part in parts)
    assert " ".join(parts) == words


def test_a_text_that_fits_is_not_split():
    assert build_message(**text(text="a" * 4096), max_text_parts=10).parts is None


def test_a_text_of_more_parts_than_allowed_is_refused_naming_the_setting():
    with pytest.raises(InvalidMessage) as caught:
        # 5 paragraphs of 2,100 characters: a part each, as no two fit in one.
        build_message(**text(text="\n\n".join(["word " * 420] * 5)), max_text_parts=3)
    assert caught.value.field == "text"
    assert "ZAPA_MAX_TEXT_PARTS (3)" in str(caught.value)


def test_a_text_longer_than_every_part_full_is_refused_before_it_is_split():
    with pytest.raises(InvalidMessage) as caught:
        build_message(**text(text="a" * (2 * MAX_TEXT_CHARS + 1)), max_text_parts=2)
    assert "must be at most 8192 characters" in str(caught.value)


def test_a_long_text_whose_part_would_be_over_zapws_body_limit_is_refused():
    emoji = "\U0001F600" * 5000  # two parts, each over 12,000 bytes once escaped
    assert rejected_field(**text(text=emoji), max_text_parts=10, max_body_bytes=20_000) \
        == "text"
    assert build_message(**text(text=emoji), max_text_parts=10, max_body_bytes=100_000).parts


def test_text_of_4096_characters_is_accepted():
    assert len(build_message(**text(text="a" * 4096)).text) == 4096


def test_text_that_is_not_a_string_is_refused():
    assert rejected_field(**text(text=42)) == "text"


def test_caption_on_a_text_message_is_refused_as_caption():
    assert rejected_field(**text(caption="a caption")) == "caption"


def test_media_url_on_a_text_message_is_refused_as_media_url():
    assert rejected_field(**text(media_url=IMAGE_URL)) == "media_url"


def test_fields_given_as_none_count_as_absent():
    message = build_message(**text(caption=None, media_url=None))

    assert message.caption is None


# -- media ------------------------------------------------------------------------------


def test_image_without_media_is_refused():
    assert rejected_field(to=PHONE, type="image", session="s1") == "media_url"


def test_image_with_both_media_url_and_media_base64_is_refused():
    assert rejected_field(**image(media_base64=PNG_BASE64)) == "media_base64"


def test_media_base64_with_data_uri_prefix_is_refused():
    data_uri = f"data:image/png;base64,{PNG_BASE64}"

    assert rejected_field(
        to=PHONE, type="image", media_base64=data_uri, session="s1"
    ) == "media_base64"


def test_invalid_base64_is_refused():
    assert rejected_field(
        to=PHONE, type="image", media_base64="not base64!!", session="s1"
    ) == "media_base64"


def test_empty_base64_is_refused():
    assert rejected_field(
        to=PHONE, type="image", media_base64="", session="s1"
    ) == "media_base64"


def test_valid_base64_is_kept_as_given():
    message = build_message(to=PHONE, type="video", media_base64=PNG_BASE64, session="s1")

    assert message.media_base64 == PNG_BASE64
    assert message.media_url is None


@pytest.mark.parametrize("url", ["ftp://cdn.example.com/cat.png", "file:///etc/passwd",
                                 "cdn.example.com/cat.png", "https://"])
def test_media_url_that_is_not_http_is_refused(url):
    assert rejected_field(**image(media_url=url)) == "media_url"


def test_http_and_https_media_urls_are_accepted():
    audio = build_message(to=PHONE, type="audio", media_url="http://x.example/a.ogg",
                          session="s1")

    assert audio.media_url == "http://x.example/a.ogg"
    assert build_message(**image()).media_url == IMAGE_URL


def test_text_on_an_image_is_refused_as_text():
    assert rejected_field(**image(text="hello")) == "text"


def test_file_name_on_an_image_is_refused_as_file_name():
    assert rejected_field(**image(file_name="cat.png")) == "file_name"


def test_image_caption_is_kept():
    assert build_message(**image(caption="a cat")).caption == "a cat"


def test_document_without_file_name_is_refused():
    assert rejected_field(
        to=PHONE, type="document", media_url="https://x.example/a.pdf", session="s1"
    ) == "file_name"


def test_document_with_file_name_is_accepted():
    message = build_message(to=PHONE, type="document", media_url="https://x.example/a.pdf",
                            file_name="a.pdf", session="s1")

    assert message.file_name == "a.pdf"
    assert message.type == MessageType.DOCUMENT


# -- location ---------------------------------------------------------------------------


def test_latitude_above_90_is_refused():
    assert rejected_field(**location(latitude=90.1)) == "latitude"


def test_latitude_below_minus_90_is_refused():
    assert rejected_field(**location(latitude=-91)) == "latitude"


def test_longitude_above_180_is_refused():
    assert rejected_field(**location(longitude=181)) == "longitude"


def test_latitude_given_as_string_is_refused():
    assert rejected_field(**location(latitude="-23.5")) == "latitude"


def test_latitude_given_as_bool_is_refused():
    assert rejected_field(**location(latitude=True)) == "latitude"


def test_latitude_that_is_not_finite_is_refused():
    assert rejected_field(**location(latitude=float("nan"))) == "latitude"


def test_location_without_longitude_is_refused():
    assert rejected_field(to=PHONE, type="location", latitude=1.0, session="s1") == "longitude"


def test_latitude_and_longitude_zero_are_accepted():
    message = build_message(**location(latitude=0, longitude=0))

    assert message.latitude == 0.0
    assert message.longitude == 0.0


def test_location_bounds_are_inclusive():
    message = build_message(**location(latitude=-90, longitude=180))

    assert (message.latitude, message.longitude) == (-90.0, 180.0)


def test_caption_on_a_location_is_refused_as_caption():
    assert rejected_field(**location(caption="here")) == "caption"


# -- contact ----------------------------------------------------------------------------


def test_contact_without_contact_name_is_refused():
    assert rejected_field(
        to=PHONE, type="contact", contact_number="5511977776666", session="s1"
    ) == "contact_name"


def test_contact_without_contact_number_is_refused():
    assert rejected_field(
        to=PHONE, type="contact", contact_name="Ana", session="s1"
    ) == "contact_number"


def test_contact_number_written_with_plus_and_spaces_is_normalised_to_digits():
    message = build_message(to=PHONE, type="contact", contact_name="Ana",
                            contact_number="+55 11 97777 6666", session="s1")

    assert message.contact_number == "5511977776666"


# -- sender -----------------------------------------------------------------------------


def test_session_and_from_number_together_are_refused():
    assert rejected_field(**text(from_number="1234567890")) == "from_number"


def test_no_session_and_no_default_is_refused_as_session():
    assert rejected_field(to=PHONE, text="hello") == "session"


def test_default_session_is_used_when_no_sender_is_named():
    message = build_message(default_session="main", to=PHONE, text="hello")

    assert message.session == "main"
    assert message.from_number is None


def test_named_session_wins_over_default_session():
    assert build_message(default_session="main", **text()).session == "s1"


def test_from_number_is_accepted_instead_of_a_session():
    message = build_message(default_session="main", to=PHONE, text="hello",
                            from_number="1234567890")

    assert message.from_number == "1234567890"
    assert message.session is None


def test_from_number_that_is_not_a_phone_is_refused():
    assert rejected_field(to=PHONE, text="hello", from_number="+1234567890") == "from_number"


@pytest.mark.parametrize("session", ["", "   ", "a/b", "x" * 101, "tab\there", ".", "..",
                                     "a\\b", 7])
def test_malformed_session_id_is_refused(session):
    assert rejected_field(**text(session=session)) == "session"


@pytest.mark.parametrize("session", [".", ".."])
def test_a_dot_session_is_refused_saying_why(session):
    with pytest.raises(InvalidMessage) as caught:
        build_message(**text(session=session))

    assert str(caught.value) == "session: must not be '.' or '..' (a URL path would drop or " \
                                "climb it)"


# -- what leaves the module -------------------------------------------------------------


def test_to_task_kwargs_omits_unset_fields_and_gives_plain_strings():
    kwargs = build_message(**text(priority="high")).to_task_kwargs()

    assert kwargs == {"to": PHONE, "type": "text", "text": "hello", "session": "s1",
                      "priority": "high"}
    assert type(kwargs["type"]) is str
    assert type(kwargs["priority"]) is str


def test_to_task_kwargs_keeps_zero_coordinates():
    kwargs = build_message(**location(latitude=0, longitude=0)).to_task_kwargs()

    assert kwargs["latitude"] == 0.0
    assert kwargs["longitude"] == 0.0


def test_task_kwargs_rebuild_the_same_message():
    message = build_message(to=PHONE, type="document", media_base64=PNG_BASE64,
                            file_name="a.pdf", caption="report", from_number="1234567890",
                            priority="low")

    assert build_message(**message.to_task_kwargs()) == message


def test_log_fields_mask_the_phone_and_carry_no_text():
    message = build_message(**text(text="my secret plan"))

    logged = message.log_fields()

    assert logged == {"to": "551********77", "type": "text", "priority": "default",
                      "session": "s1"}
    assert PHONE not in repr(logged)
    assert "secret" not in repr(logged)


def test_log_fields_mask_the_sender_number_too():
    message = build_message(to=PHONE, text="hi", from_number="1234567890")

    logged = message.log_fields()

    assert logged["from_number"] == "123*****90"
    assert "1234567890" not in repr(logged)


def test_outbound_message_is_immutable():
    message = build_message(**text())

    with pytest.raises(AttributeError):
        message.text = "changed"  # type: ignore[misc]
    assert isinstance(message, OutboundMessage)


# -- zapw's body limit (ZAPW_MAX_BODY_BYTES) ---------------------------------------------

LIMIT = 102_400
BASE64_100K = "A" * 100_000  # valid base64 (of zero bytes), ASCII: one byte a character


def posted_image_size(data: str, caption: str) -> int:
    """The bytes zapw receives for an image with an ASCII caption, written out by hand:
    `json.dumps`' default separators, fields in zapw's names and order."""
    return len(f'{{"to": "{PHONE}", "type": "image", "mediaBase64": "{data}", '
               f'"caption": "{caption}"}}')


def image_of_size(size: int) -> dict[str, Any]:
    caption = "x" * (size - posted_image_size(BASE64_100K, ""))
    assert posted_image_size(BASE64_100K, caption) == size
    return {"to": PHONE, "type": "image", "media_base64": BASE64_100K, "caption": caption,
            "session": "s1"}


def test_a_body_of_exactly_the_limit_is_accepted_and_measured_as_posted():
    message = build_message(max_body_bytes=LIMIT, **image_of_size(LIMIT))

    assert len(message.bridge_payload()) == LIMIT


def test_a_body_one_byte_over_the_limit_is_refused_on_media_base64_pointing_to_media_url():
    with pytest.raises(InvalidMessage) as caught:
        build_message(max_body_bytes=LIMIT, **image_of_size(LIMIT + 1))

    assert caught.value.field == "media_base64"
    assert caught.value.reason == ("the zapw request body would be 102401 bytes, 1 over "
                                   "ZAPW_MAX_BODY_BYTES (102400): send large media by "
                                   "media_url")


def test_multi_byte_text_counts_as_its_json_escapes_not_its_characters():
    """zapw gets `\\u00e9` (6 bytes) for é and a surrogate pair (12) for an emoji."""
    overhead = len(f'{{"to": "{PHONE}", "type": "text", "text": ""}}')
    accents = "é" * 100 + "😀" * 20
    filler = "a" * (1024 - overhead - 100 * 6 - 20 * 12)
    at_limit = text(text=accents + filler)

    assert len(build_message(max_body_bytes=1024, **at_limit).bridge_payload()) == 1024
    with pytest.raises(InvalidMessage) as caught:
        build_message(max_body_bytes=1024, **text(text=accents + filler + "a"))
    assert caught.value.field == "text"
    assert caught.value.reason == ("the zapw request body would be 1025 bytes, 1 over "
                                   "ZAPW_MAX_BODY_BYTES (1024); text is its largest field")


def test_the_longest_text_of_emoji_is_measured_to_the_byte():
    """4096 astral characters, 12 bytes each once escaped: the worst case per character."""
    emoji = "😀" * MAX_TEXT_CHARS
    size = len(f'{{"to": "{PHONE}", "type": "text", "text": ""}}') + 12 * MAX_TEXT_CHARS

    assert len(build_message(max_body_bytes=size, **text(text=emoji)).bridge_payload()) == size
    assert rejected_field(max_body_bytes=size - 1, **text(text=emoji)) == "text"


def test_an_over_size_body_without_base64_names_its_largest_field():
    long_url = "https://cdn.example.com/" + "a" * 1000 + ".pdf"
    given = {"to": PHONE, "type": "document", "media_url": long_url, "caption": "c" * 100,
             "file_name": "report.pdf", "session": "s1"}

    assert rejected_field(max_body_bytes=1024, **given) == "media_url"


def test_without_a_limit_the_body_size_is_not_checked():
    """Rebuilding a message already checked when it was queued measures nothing again."""
    message = build_message(**image_of_size(LIMIT + 1))

    assert len(message.bridge_payload()) == LIMIT + 1


# -- hostile input: always InvalidMessage, never another exception ---------------------

HUGE = 10**4000  # a JSON integer of 4,001 digits: Python reads it, no float holds it


@pytest.mark.parametrize(("given", "field"), [
    (text(expires_at=HUGE), "expires_at"),
    (text(expires_at=-HUGE), "expires_at"),
    (text(expires_at=float("inf")), "expires_at"),
    (text(expires_at=1e400), "expires_at"),
    (text(ttl=HUGE), "ttl"),
    (text(ttl=float("nan")), "ttl"),
    (location(latitude=HUGE), "latitude"),
    (location(longitude=-HUGE), "longitude"),
], ids=["expires_at-huge", "expires_at-minus-huge", "expires_at-inf", "expires_at-1e400",
        "ttl-huge", "ttl-nan", "latitude-huge", "longitude-minus-huge"])
def test_a_number_no_float_can_hold_is_refused_naming_its_field(given, field):
    assert rejected_field(**given) == field


def test_expires_at_in_milliseconds_is_refused():
    assert rejected_field(**text(expires_at=1_795_599_514_484)) == "expires_at"


def test_an_integer_expires_at_is_accepted_as_a_float():
    assert build_message(**text(expires_at=1_795_599_514)).expires_at == 1_795_599_514.0


@pytest.mark.parametrize("url", ["http://[", "https://[::1", "http://[zz]/x"])
def test_a_media_url_urlparse_cannot_read_is_refused_as_media_url(url):
    assert rejected_field(**image(media_url=url)) == "media_url"


@pytest.mark.parametrize("name", ["default_session", "max_body_bytes"])
def test_a_field_named_like_a_setting_is_refused_never_taken_as_it(name):
    """A request body passed as the mapping may hold any name: it is refused, not a
    TypeError and not the setting (`default_session` must not choose the session)."""
    with pytest.raises(InvalidMessage) as caught:
        build_message({"to": PHONE, "text": "hi", name: "s-evil"}, default_session="s1",
                      max_body_bytes=2048)

    assert caught.value.field == name
    assert caught.value.reason == "is a setting of zapa-bridge, not a field of a message"


def test_the_request_as_a_mapping_builds_the_same_message_as_keywords():
    assert build_message(text(), default_session="d") == build_message(**text())


def test_a_field_given_both_in_the_mapping_and_as_a_keyword_is_refused():
    with pytest.raises(InvalidMessage) as caught:
        build_message(text(), text="again")

    assert (caught.value.field, caught.value.reason) == ("text", "given twice")


def test_check_field_names_passes_every_field_and_names_the_first_unknown():
    check_field_names(FIELD_NAMES)
    with pytest.raises(InvalidMessage) as caught:
        check_field_names(["to", "zeta", "alpha"])

    assert (caught.value.field, caught.value.reason) == ("alpha", "unknown field")


ODD_VALUES = [HUGE, -HUGE, float("inf"), float("-inf"), float("nan"), 1e308, True, 0, -1, "",
              " ", "\x00", "\ud800", "http://[", "..", "/", "x" * 5000, [1], [[[]]],
              {"a": {"b": {}}}]
KIND_BASES = [text(), image(), location(),
              {"to": PHONE, "type": "document", "media_url": IMAGE_URL,
               "file_name": "a.pdf", "session": "s1"},
              {"to": PHONE, "type": "contact", "contact_name": "Ana",
               "contact_number": PHONE, "session": "s1"}]


@pytest.mark.parametrize("field", sorted(FIELD_NAMES))
def test_any_json_value_in_any_field_is_a_message_or_invalid_message(field):
    """What a JSON body can hold, in every field of every type: nothing but InvalidMessage
    (a 422 over HTTP) ever comes out, so no input of a caller is a 500."""
    for base in KIND_BASES:
        for value in ODD_VALUES:
            with contextlib.suppress(InvalidMessage):
                build_message(base | {field: value}, default_session="d",
                              max_body_bytes=102_400)
