"""Throughput per business number (130429) and the (number, user) pair rate (131056), reference §7."""

import asyncio
from typing import Any

import httpx
from fastapi import FastAPI

URL = "/v21.0/106540352242922/messages"


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _text(to: str, body: str = "hi") -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": body}}


def _max_in_sliding_second(times: list[float]) -> int:
    times = sorted(times)
    return max((sum(1 for other in times if at - 1.0 < other <= at) for at in times), default=0)


async def test_200_concurrent_sends_to_a_20_mps_number(sim_server: Any, kit: Any) -> None:
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=sim_server.url, timeout=30, limits=limits) as client:
        registered = await kit.register(client, coexistence=True)
        assert registered["throughputMps"] == 20 and registered["coexistence"] is True
        await client.post("/_sim/config", json={"windowEnforcement": "off"})

        async def send(index: int) -> httpx.Response:
            # distinct recipients so that only the number's throughput limits them
            return await client.post(URL, json=_text(f"1650555{index:04d}"), headers=kit.auth())

        responses = await asyncio.gather(*(send(index) for index in range(200)))

        ok = [response for response in responses if response.status_code == 200]
        refused = [response for response in responses if response.status_code != 200]
        assert 20 <= len(ok) < 200
        for response in refused:
            assert response.status_code == 400
            error = response.json()["error"]
            assert error["message"] == "(#130429) Rate limit hit"
            assert (error["code"], error["error_subcode"]) == (130429, 2494055)
            assert error["error_data"]["details"] == "Cloud API message throughput has been reached."

        sent = (await client.get("/_sim/sent-messages", params={"phoneNumberId": kit.PNID})).json()["items"]
        assert len(sent) == len(ok)
        accepted_at = [item["receivedAt"] for item in sent]  # the time the limit counts
        assert _max_in_sliding_second(accepted_at) <= 20

        stats = (await client.get("/_sim/throughput", params={"phoneNumberId": kit.PNID})).json()
        assert stats["phoneNumberId"] == kit.PNID and stats["limitMps"] == 20
        assert (stats["received"], stats["accepted"], stats["rejected"]) == (200, len(ok), len(refused))
        assert stats["maxAcceptedInAnySecond"] == _max_in_sliding_second(accepted_at)
        assert stats["maxAcceptedInAnySecond"] <= 20
        assert stats["maxReceivedInAnySecond"] >= stats["maxAcceptedInAnySecond"]
        buckets = stats["perSecond"]
        assert sum(bucket["received"] for bucket in buckets) == 200
        assert sum(bucket["accepted"] for bucket in buckets) == len(ok)
        assert all(isinstance(bucket["second"], int) for bucket in buckets)


async def test_throughput_is_a_sliding_second_and_counts_every_body(
    sim: httpx.AsyncClient, sim_app: FastAPI, kit: Any
) -> None:
    clock = Clock()
    sim_app.state.simulator.state.clock = clock
    await kit.register(sim, throughputMps=3)
    await kit.open_window(sim)
    read = {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.IN"}
    invalid = {"messaging_product": "whatsapp", "to": kit.GUEST, "type": "text", "text": {"body": ""}}
    assert (await sim.post(URL, json=read, headers=kit.auth())).status_code == 200
    clock.now += 0.3
    assert (await sim.post(URL, json=invalid, headers=kit.auth())).json()["error"]["code"] == 100
    clock.now += 0.3
    assert (await sim.post(URL, json=_text(kit.GUEST), headers=kit.auth())).status_code == 200
    clock.now += 0.3
    assert (await sim.post(URL, json=_text(kit.GUEST), headers=kit.auth())).json()["error"]["code"] == 130429
    clock.now += 0.15  # 1.05 s after the first: one slot is free again
    assert (await sim.post(URL, json=_text(kit.GUEST), headers=kit.auth())).status_code == 200
    assert (await sim.post(URL, json=_text(kit.GUEST), headers=kit.auth())).json()["error"]["code"] == 130429

    stats = (await sim.get("/_sim/throughput", params={"phoneNumberId": kit.PNID})).json()
    assert (stats["received"], stats["accepted"], stats["rejected"]) == (6, 4, 2)
    assert stats["maxAcceptedInAnySecond"] == 3 and stats["maxReceivedInAnySecond"] == 5
    assert stats["perSecond"] == [
        {"second": 1_800_000_000, "received": 4, "accepted": 3, "rejected": 1},
        {"second": 1_800_000_001, "received": 2, "accepted": 1, "rejected": 1},
    ]

    # the switch turns the limit off (requests are still counted)
    await sim.post("/_sim/config", json={"throughputEnforcement": False})
    for _ in range(5):
        assert (await sim.post(URL, json=_text(kit.GUEST), headers=kit.auth())).status_code == 200
    assert (await sim.get("/_sim/throughput", params={"phoneNumberId": kit.PNID})).json()["received"] == 11

    await sim.post("/_sim/reset")
    stats = (await sim.get("/_sim/throughput", params={"phoneNumberId": kit.PNID})).json()
    assert (stats["received"], stats["perSecond"], stats["maxAcceptedInAnySecond"]) == (0, [], 0)
    assert (await sim.get("/_sim/config")).json()["throughputEnforcement"] is True


async def test_marketing_messages_count_for_throughput_and_default_is_80(sim: httpx.AsyncClient, kit: Any) -> None:
    registered = await kit.register(sim)
    assert registered["throughputMps"] == 80
    template = {
        "messaging_product": "whatsapp",
        "to": kit.GUEST,
        "type": "template",
        "template": {"name": "hello_world", "language": {"code": "en_US"}},
    }
    marketing = "/v21.0/106540352242922/marketing_messages"
    assert (await sim.post(marketing, json=template, headers=kit.auth())).status_code == 200
    assert (await sim.get("/_sim/throughput", params={"phoneNumberId": kit.PNID})).json()["accepted"] == 1


async def test_pair_rate_burst_then_one_per_period(sim: httpx.AsyncClient, sim_app: FastAPI, kit: Any) -> None:
    clock = Clock()
    sim_app.state.simulator.state.clock = clock
    await kit.register(sim)
    await kit.open_window(sim)
    await kit.open_window(sim, "16505550000")
    config = (await sim.post("/_sim/config", json={"pairRate": {"burst": 3, "perSeconds": 6}})).json()
    assert config["pairRate"] == {"burst": 3, "perSeconds": 6.0} and config["pairRateEnforcement"] is True
    for _ in range(3):
        clock.now += 0.1
        assert (await sim.post(URL, json=_text(kit.GUEST), headers=kit.auth())).status_code == 200
    reaction = {
        "messaging_product": "whatsapp",
        "to": kit.GUEST,
        "type": "reaction",
        "reaction": {"message_id": "wamid.IN", "emoji": "👍"},
    }
    assert (await sim.post(URL, json=reaction, headers=kit.auth())).status_code == 200  # reactions don't count
    refused = await sim.post(URL, json=_text(kit.GUEST), headers=kit.auth())
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == 131056
    assert error["message"] == "(#131056) (Business Account, Consumer Account) pair rate limit hit"
    assert error["error_data"]["details"] == (
        "Message failed to send because there were too many messages sent from this phone number to the same "
        "phone number in a short period of time."
    )
    # another guest is not affected
    assert (await sim.post(URL, json=_text("16505550000"), headers=kit.auth())).status_code == 200
    clock.now += 6.0  # one message per 6 s refills
    assert (await sim.post(URL, json=_text(kit.GUEST), headers=kit.auth())).status_code == 200
    assert (await sim.post(URL, json=_text(kit.GUEST), headers=kit.auth())).json()["error"]["code"] == 131056

    await sim.post("/_sim/config", json={"pairRateEnforcement": False})
    assert (await sim.post(URL, json=_text(kit.GUEST), headers=kit.auth())).status_code == 200


async def test_default_pair_rate_is_a_burst_of_45(sim: httpx.AsyncClient, kit: Any) -> None:
    await kit.register(sim)
    await kit.open_window(sim)
    codes = [(await sim.post(URL, json=_text(kit.GUEST), headers=kit.auth())).status_code for _ in range(46)]
    assert codes == [200] * 45 + [400]
