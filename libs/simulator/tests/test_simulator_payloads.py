"""Payload builders produce Meta's shapes (reference §3)."""

import base64

from eva_simulator import payloads
from eva_simulator.errors import webhook_error

NUMBER = payloads.Business(
    waba_id="419561257915477", phone_number_id="106540352242922", display_phone_number="+1 555-078-3881"
)


def test_wamid_looks_like_meta() -> None:
    wamid = payloads.new_wamid("16505551234")
    assert wamid.startswith("wamid.")
    raw = base64.b64decode(wamid.removeprefix("wamid."))
    assert raw.startswith(b"\x1c\x18\x0b16505551234\x15\x02\x00\x12\x18\x14")
    assert raw.endswith(b"\x00")
    assert payloads.new_wamid("16505551234") != wamid
    outbound = base64.b64decode(payloads.new_wamid("16505551234", outbound=True)[6:])
    assert b"\x15\x02\x00\x11\x18\x12" in outbound


def test_inbound_text_delivery_matches_reference_shape() -> None:
    payload = payloads.inbound_text_delivery(
        NUMBER,
        from_="16505551234",
        name="Sheena Nelson",
        text="Does it come in another color?",
        wamid="wamid.X",
        timestamp=1749416383,
    )
    assert payload == {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "419561257915477",
                "changes": [
                    {
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                            "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}],
                            "messages": [
                                {
                                    "from": "16505551234",
                                    "id": "wamid.X",
                                    "timestamp": "1749416383",
                                    "type": "text",
                                    "text": {"body": "Does it come in another color?"},
                                }
                            ],
                        },
                        "field": "messages",
                    }
                ],
            }
        ],
    }


def test_general_inbound_message_with_context() -> None:
    message = payloads.inbound_message(
        "location",
        {"latitude": 37.44, "longitude": -122.16, "name": "Philz Coffee"},
        from_="16505551234",
        context={"from": "15550783881", "id": "wamid.PREV"},
    )
    assert list(message) == ["context", "from", "id", "timestamp", "type", "location"]
    assert message["location"]["latitude"] == 37.44
    assert message["timestamp"].isdigit()


def test_status_builders() -> None:
    sent = payloads.status(
        "wamid.OUT",
        "sent",
        recipient_id="16505551234",
        timestamp="1750030073",
        conversation=payloads.conversation_object(
            conversation_id="c1", origin_type="marketing", expiration_timestamp="1750116480"
        ),
        pricing=payloads.pricing_object(category="marketing", billable=True),
    )
    assert sent == {
        "id": "wamid.OUT",
        "status": "sent",
        "timestamp": "1750030073",
        "recipient_id": "16505551234",
        "conversation": {"id": "c1", "expiration_timestamp": "1750116480", "origin": {"type": "marketing"}},
        "pricing": {"billable": True, "pricing_model": "PMP", "type": "regular", "category": "marketing"},
    }
    failed = payloads.failed_status("wamid.OUT", recipient_id="16505551234", code=131049)
    assert failed["errors"] == [webhook_error(131049)]
    error = failed["errors"][0]
    assert (
        error["title"]
        == error["message"]
        == ("This message was not delivered to maintain healthy ecosystem engagement.")
    )
    assert set(error) == {"code", "title", "message", "error_data", "href"}


def test_batching_helpers() -> None:
    other = payloads.Business(waba_id="999", phone_number_id="555", display_phone_number="15550000000")
    a = payloads.inbound_delivery(
        NUMBER, [payloads.text_message("first", from_="1"), payloads.text_message("second", from_="1")]
    )
    b = payloads.status_delivery(
        NUMBER,
        [
            payloads.status("wamid.O1", "read", recipient_id="1"),
            payloads.status("wamid.O2", "delivered", recipient_id="1"),
        ],
    )
    c = payloads.inbound_text_delivery(other, from_="2", name="B", text="hi")
    merged = payloads.merge_deliveries([a, b, c])
    assert [item["id"] for item in merged["entry"]] == ["419561257915477", "999"]
    changes = merged["entry"][0]["changes"]
    assert len(changes) == 2
    assert len(changes[0]["value"]["messages"]) == 2
    assert len(changes[1]["value"]["statuses"]) == 2
    assert "contacts" not in changes[0]["value"]  # no contacts given → omitted, like system messages
    assert len(payloads.wamids_in(merged)) == 3
    assert payloads.phone_number_ids_in(merged) == ["106540352242922", "555"]
    errors = payloads.delivery(NUMBER, [payloads.errors_value(NUMBER, [webhook_error(130429)])])
    assert errors["entry"][0]["changes"][0]["value"]["errors"][0]["code"] == 130429
