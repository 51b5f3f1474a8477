"""The CLI as a user runs it: ``python -m eva_simulator ...`` in a subprocess."""

import asyncio
import json
import socket
import sys
import time
from typing import Any

import httpx


async def _run(*args: str, timeout: float = 30.0) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "eva_simulator",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_send_webhook_standalone(receiver: Any, kit: Any) -> None:
    code, out, _ = await _run(
        "send-webhook",
        "--url",
        receiver.url,
        "--app-secret",
        kit.APP_SECRET,
        "--phone-number-id",
        kit.PNID,
        "--from",
        kit.GUEST,
        "--name",
        "Ana",
        "--text",
        "Olá / bom dia",
    )
    assert code == 0, out
    result = json.loads(out)
    assert result["status"] == 200 and result["delivered"] is True
    (got,) = await receiver.wait_for(1)
    assert got.signature_ok and b"Ol\\u00e1 \\/ bom dia" in got.body
    message = json.loads(got.body)["entry"][0]["changes"][0]["value"]["messages"][0]
    assert message["id"] == result["wamid"] and message["from"] == kit.GUEST

    code, out, _ = await _run(
        "send-webhook",
        "--url",
        receiver.url,
        "--app-secret",
        "wrong-secret",
        "--phone-number-id",
        kit.PNID,
        "--from",
        kit.GUEST,
        "--text",
        "forged",
    )
    assert code == 1 and json.loads(out)["status"] == 401


async def test_guest_message_through_a_running_simulator(sim_server: Any, receiver: Any, kit: Any) -> None:
    async with httpx.AsyncClient(base_url=sim_server.url) as client:
        await kit.register(client, receiver.url)
    code, out, _ = await _run(
        "guest-message",
        "--sim-url",
        sim_server.url,
        "--phone-number-id",
        kit.PNID,
        "--from",
        kit.GUEST,
        "--name",
        "Ana",
        "--text",
        "Quarto 12, por favor",
        "--deliveries",
        "2",
    )
    assert code == 0, out
    result = json.loads(out)
    assert result["delivered"] is True and len(result["attempts"]) == 2
    received = await receiver.wait_for(2)
    assert all(item.signature_ok for item in received)


async def test_verify_webhook_command(receiver: Any, kit: Any) -> None:
    code, out, _ = await _run("verify-webhook", "--url", receiver.url, "--verify-token", kit.VERIFY_TOKEN)
    assert code == 0 and json.loads(out)["verified"] is True


async def test_serve_logs_json_without_secrets(kit: Any) -> None:
    port = _free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "eva_simulator",
        "serve",
        "--port",
        str(port),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            deadline = time.monotonic() + 20
            while True:
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "simulator did not start"
                await asyncio.sleep(0.1)
            await kit.register(client)
            sent = await client.post(f"/v21.0/{kit.PNID}/messages", json=kit.text_send(), headers=kit.auth())
            assert sent.status_code == 200
            query = await client.post(
                f"/v21.0/{kit.PNID}/messages", json=kit.text_send(), params={"access_token": kit.TOKEN}
            )
            assert query.status_code == 200
    finally:
        process.terminate()
        _, stderr = await asyncio.wait_for(process.communicate(), 20)
    lines = [json.loads(line) for line in stderr.decode().splitlines() if line.strip()]
    assert any(line.get("event") == "http_request" and line.get("path") == "/_sim/numbers" for line in lines)
    assert any(line.get("event") == "graph_send" for line in lines)
    text = stderr.decode()
    assert kit.TOKEN not in text and kit.APP_SECRET not in text
