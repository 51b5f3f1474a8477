"""``eva-simulator`` command line.

* ``serve``: run the simulator (uvicorn).
* ``guest-message``: ask a running simulator to deliver a guest's message to a number's webhook.
* ``send-webhook``: standalone; build, sign and POST one inbound delivery without a simulator.
* ``verify-webhook``: standalone; run Meta's GET ``hub.challenge`` handshake against a callback URL.

Commands that talk HTTP write one JSON object to stdout and exit 0 on success, 1 otherwise.
"""

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any

import httpx

from eva_simulator import payloads
from eva_simulator.client import SimulatorClient, SimulatorClientError
from eva_simulator.signing import meta_body
from eva_simulator.webhooks import RetryPolicy, WebhookSender, verify_callback

DEFAULT_SIM_URL = "http://127.0.0.1:3010"
DEFAULT_DISPLAY_NUMBER = "15550000000"


def _write_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _content_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--text", help="text body of the guest's message")
    group.add_argument("--type", help="message type (image, location, interactive, ...); needs --content")
    parser.add_argument("--content", help="JSON object of the message type, e.g. '{\"latitude\": 1, ...}'")
    parser.add_argument("--name", default="WhatsApp Guest", help="guest's profile name")
    parser.add_argument("--from", dest="from_", required=True, help="guest's wa_id (digits)")
    parser.add_argument("--timestamp", help="Unix seconds (default: now)")


def _content(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    if args.text is not None:
        return "text", {"body": args.text}
    if not args.content:
        raise SystemExit("--type needs --content (a JSON object)")
    content = json.loads(args.content)
    if not isinstance(content, dict):
        raise SystemExit("--content must be a JSON object")
    return args.type, content


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eva-simulator", description="WhatsApp Cloud API simulator")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the simulator")
    serve.add_argument("--host", help="bind address (default: SIMULATOR_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: SIMULATOR_PORT or 3010)")
    serve.add_argument("--log-level", help="default: SIMULATOR_LOG_LEVEL or INFO")

    guest = commands.add_parser("guest-message", help="deliver a guest's message through a running simulator")
    guest.add_argument("--sim-url", default=DEFAULT_SIM_URL)
    guest.add_argument("--phone-number-id", required=True)
    guest.add_argument("--deliveries", type=int, default=1, help="send the same delivery N times (duplicates)")
    _content_args(guest)

    send = commands.add_parser("send-webhook", help="build, sign and POST one delivery (no simulator needed)")
    send.add_argument("--url", required=True, help="callback URL, e.g. http://127.0.0.1:3002/webhooks/whatsapp")
    send.add_argument("--app-secret", required=True)
    send.add_argument("--phone-number-id", required=True)
    send.add_argument("--waba-id", help="entry.id (default: the phone number id)")
    send.add_argument("--display-phone-number", default=DEFAULT_DISPLAY_NUMBER)
    send.add_argument("--wamid", help="message id (default: a new Meta-like wamid)")
    send.add_argument("--signature", help="send this X-Hub-Signature-256 verbatim instead of the real one")
    send.add_argument("--max-attempts", type=int, default=1, help="retry like Meta up to N attempts")
    _content_args(send)

    verify = commands.add_parser("verify-webhook", help="run Meta's GET hub.challenge handshake")
    verify.add_argument("--url", required=True)
    verify.add_argument("--verify-token", required=True)
    verify.add_argument("--challenge", default="1158201444")
    verify.add_argument("--mode", default="subscribe")
    return parser


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from eva_simulator.app import create_app
    from eva_simulator.logs import configure_logging
    from eva_simulator.settings import Settings

    overrides = {
        key: value
        for key, value in {"host": args.host, "port": args.port, "log_level": args.log_level}.items()
        if value is not None
    }
    settings = Settings(**overrides)
    configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        log_level=settings.log_level.lower(),
    )
    return 0


async def _guest_message(args: argparse.Namespace) -> int:
    message_type, content = _content(args)
    fields: dict[str, Any] = (
        {"text": args.text} if message_type == "text" else {"type": message_type, "content": content}
    )
    async with SimulatorClient(args.sim_url) as sim:
        try:
            result = await sim.guest_message(
                phone_number_id=args.phone_number_id,
                from_=args.from_,
                name=args.name,
                timestamp=args.timestamp,
                deliveries=args.deliveries,
                **fields,
            )
        except (SimulatorClientError, httpx.HTTPError) as exc:
            _write_json({"error": str(exc)})
            return 1
    _write_json({key: result[key] for key in ("wamid", "delivered", "attempts")})
    return 0 if result["delivered"] else 1


async def _send_webhook(args: argparse.Namespace) -> int:
    message_type, content = _content(args)
    number = payloads.Business(
        waba_id=args.waba_id or args.phone_number_id,
        phone_number_id=args.phone_number_id,
        display_phone_number=args.display_phone_number,
    )
    message = payloads.inbound_message(
        message_type, content, from_=args.from_, wamid=args.wamid, timestamp=args.timestamp
    )
    payload = payloads.inbound_delivery(number, [message], contacts=[payloads.contact(args.from_, args.name)])
    sender = WebhookSender(policy=RetryPolicy(max_attempts=max(1, args.max_attempts)))
    try:
        result = await sender.deliver(
            args.url,
            meta_body(payload),
            app_secret=args.app_secret,
            phone_number_id=args.phone_number_id,
            signature_override=args.signature,
        )
    finally:
        await sender.aclose()
    last = result.attempts[-1]
    _write_json(
        {
            "status": last.status,
            "wamid": message["id"],
            "delivered": result.delivered,
            "attempts": len(result.attempts),
            **({"error": last.error} if last.error else {}),
        }
    )
    return 0 if result.delivered else 1


async def _verify_webhook(args: argparse.Namespace) -> int:
    async with httpx.AsyncClient() as client:
        result = await verify_callback(
            client, args.url, verify_token=args.verify_token, challenge=args.challenge, mode=args.mode
        )
    _write_json(result.to_json())
    return 0 if result.verified else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "guest-message":
        return asyncio.run(_guest_message(args))
    if args.command == "send-webhook":
        return asyncio.run(_send_webhook(args))
    return asyncio.run(_verify_webhook(args))
