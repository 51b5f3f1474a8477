"""Meta's error catalog, Graph error bodies and webhook ``errors[]`` elements.

One table (``CATALOG``) feeds both the synchronous Graph error responses and the asynchronous
``statuses[].errors[]`` / ``value.errors[]`` webhook elements, so a new code is added in one place.
"""

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

ERROR_CODES_HREF = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"
GRAPH_DOCS_URL = "https://developers.facebook.com/docs/graph-api"


@dataclass(frozen=True)
class MetaErrorSpec:
    """What Meta says for one error code."""

    code: int
    title: str
    details: str
    http_status: int = 400
    error_type: str = "OAuthException"
    subcode: int | None = None


def _spec(code: int, title: str, details: str, **kwargs: Any) -> tuple[int, MetaErrorSpec]:
    return code, MetaErrorSpec(code=code, title=title, details=details, **kwargs)


# HTTP statuses are not documented per code for Cloud API (reference §5.3/§11): 400 for everything except
# the transient server-side codes, which get 5xx so that clients exercise their retry paths.
CATALOG: dict[int, MetaErrorSpec] = dict(
    [
        _spec(0, "AuthException", "Unable to authenticate the app user.", http_status=401),
        _spec(1, "API Unknown", "Invalid request or possible server error.", http_status=500),
        _spec(2, "API Service", "Temporary due to downtime or due to being overloaded.", http_status=503),
        _spec(4, "API Too Many Calls", "The app has reached its API call rate limit."),
        _spec(10, "Permission Denied", "Permission is either not granted or has been removed."),
        _spec(100, "Invalid parameter", "Invalid parameter"),
        _spec(190, "Access token has expired", "Error validating access token."),
        _spec(200, "API Permission", "Permission is either not granted or has been removed."),
        _spec(
            368,
            "Temporarily blocked for policies violations",
            "The WhatsApp Business Account associated with the app has been restricted or disabled "
            "for violating a platform policy.",
        ),
        _spec(80007, "Rate limit issues", "The WhatsApp Business Account has reached its rate limit."),
        _spec(130429, "Rate limit hit", "Cloud API message throughput has been reached.", subcode=2494055),
        _spec(
            130472,
            "User's number is part of an experiment",
            "Failed to send message because this user's phone number is part of an experiment",
        ),
        _spec(131000, "Something went wrong", "Message failed to send due to an unknown error.", http_status=500),
        _spec(131005, "Access denied", "Permission is either not granted or has been removed."),
        _spec(131008, "Required parameter is missing", "The request is missing a required parameter."),
        _spec(131009, "Parameter value is not valid", "One or more parameter values are invalid."),
        _spec(131016, "Service unavailable", "A service is temporarily unavailable.", http_status=503),
        _spec(131021, "Recipient cannot be sender", "Sender and recipient phone number is the same."),
        _spec(131026, "Message Undeliverable", "Unable to deliver message."),
        _spec(
            131042,
            "Business eligibility payment issue",
            "Message failed to send because there were one or more errors related to your payment method.",
        ),
        _spec(131045, "Incorrect certificate", "Message failed to send due to a phone number registration error."),
        _spec(
            131047,
            "Re-engagement message",
            "Message failed to send because more than 24 hours have passed since the customer last "
            "replied to this number.",
        ),
        _spec(
            131048,
            "Spam rate limit hit",
            "Message failed to send because there are restrictions on how many messages can be sent "
            "from this phone number.",
        ),
        _spec(
            131049,
            "This message was not delivered to maintain healthy ecosystem engagement.",
            "In order to maintain a healthy ecosystem engagement, the message failed to be delivered.",
        ),
        _spec(
            131050,
            "Unable to deliver the message. This recipient has chosen to stop receiving marketing "
            "messages on WhatsApp from your business.",
            "Unable to deliver the message. This recipient has chosen to stop receiving marketing "
            "messages on WhatsApp from your business.",
        ),
        _spec(131051, "Unsupported message type", "Message type is currently not supported."),
        _spec(131052, "Media download error", "Unable to download the media sent by the user."),
        _spec(131053, "Media upload error", "Unable to upload the media used in the message."),
        _spec(
            131056,
            "(Business Account, Consumer Account) pair rate limit hit",
            "Message failed to send because there were too many messages sent from this phone number "
            "to the same phone number in a short period of time.",
        ),
        _spec(
            131062,
            "Business-scoped user ID not supported",
            "This message type is not supported for business-scoped user ID recipients.",
        ),
        _spec(131057, "Account in maintenance mode", "Business Account is in maintenance mode."),
        _spec(
            131064,
            "Messaging limit reached due to template classification violations",
            "Message failed to send because the messaging limit was reached.",
        ),
        _spec(
            132000,
            "Number of parameters does not match the expected number of params",
            "The number of variable parameter values included in the request did not match the number "
            "of variable parameters defined in the template.",
        ),
        _spec(
            132001,
            "Template name does not exist in the translation",
            "The template does not exist in the specified language or the template has not been approved.",
            subcode=2494073,
        ),
        _spec(
            132012,
            "Parameter format does not match format in the created template",
            "Parameter format does not match format in the created template",
        ),
        _spec(
            132015,
            "Template is paused",
            "Template is paused due to low quality so it cannot be sent in a template message.",
        ),
        _spec(
            132016,
            "Template is disabled",
            "Template has been paused too many times due to low quality and is now permanently disabled.",
        ),
        _spec(133004, "Server temporarily unavailable", "Server is temporarily unavailable.", http_status=503),
        _spec(
            135000,
            "Generic user error",
            "Message failed to send because of an unknown error with your request parameters.",
        ),
    ]
)


def spec_for(code: int) -> MetaErrorSpec:
    """The catalog entry for ``code``, or a generic 400 entry for codes not in the table."""
    return CATALOG.get(code) or MetaErrorSpec(code=code, title=f"Error {code}", details=f"Error {code}")


def new_fbtrace_id() -> str:
    """A random ``fbtrace_id`` (23 URL-safe characters, like Meta's ``Az8or2yhqkZfEZ-_4Qn_Bam``)."""
    return "A" + secrets.token_urlsafe(18)[:22]


class GraphError(Exception):
    """A Graph API error: raised by the fake Graph handlers, rendered as Meta's error body."""

    def __init__(
        self,
        *,
        http_status: int,
        code: int,
        message: str,
        error_type: str = "OAuthException",
        details: str | None = None,
        subcode: int | None = None,
        www_authenticate: str | None = None,
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.code = code
        self.message = message
        self.error_type = error_type
        self.details = details
        self.subcode = subcode
        self.www_authenticate = www_authenticate
        self.fbtrace_id = new_fbtrace_id()

    def body(self) -> dict[str, Any]:
        """``{"error": {message, type, code, error_data?, error_subcode?, fbtrace_id}}`` in Meta's key order."""
        error: dict[str, Any] = {"message": self.message, "type": self.error_type, "code": self.code}
        if self.details is not None:
            error["error_data"] = {"messaging_product": "whatsapp", "details": self.details}
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        error["fbtrace_id"] = self.fbtrace_id
        return {"error": error}


def whatsapp_error(
    code: int, *, details: str | None = None, http_status: int | None = None, title: str | None = None
) -> GraphError:
    """A WhatsApp (Cloud API) error: ``(#code) title`` with ``error_data.details``."""
    spec = spec_for(code)
    return GraphError(
        http_status=http_status if http_status is not None else spec.http_status,
        code=code,
        message=f"(#{code}) {title or spec.title}",
        error_type=spec.error_type,
        details=details if details is not None else spec.details,
        subcode=spec.subcode,
    )


def invalid_parameter(details: str) -> GraphError:
    """Meta's ``(#100) Invalid parameter`` with a specific ``details`` string."""
    return whatsapp_error(100, details=details)


def missing_parameter(name: str) -> GraphError:
    """Meta's ``(#100) The parameter <name> is required.`` (Graph-level, no ``error_data``)."""
    return GraphError(http_status=400, code=100, message=f"(#100) The parameter {name} is required.")


def missing_token() -> GraphError:
    """No access token at all: code 190, HTTP 401 (our choice; see README "Fidelity")."""
    message = "An active access token must be used to query information about the current user."
    return GraphError(
        http_status=401,
        code=190,
        message=message,
        www_authenticate=f'OAuth "Facebook Platform" "invalid_token" "{message}"',
    )


def invalid_token() -> GraphError:
    """A token the simulator does not know: code 190, HTTP 400 as observed on the Graph API."""
    message = "Invalid OAuth access token - Cannot parse access token"
    return GraphError(
        http_status=400,
        code=190,
        message=message,
        www_authenticate=f'OAuth "Facebook Platform" "invalid_token" "{message}"',
    )


def _pacific(moment: float) -> str:
    """``Saturday, 29-Jun-24 09:00:00 PDT``: how Graph writes times in token errors (Pacific time)."""
    try:
        from zoneinfo import ZoneInfo

        local = datetime.fromtimestamp(moment, tz=ZoneInfo("America/Los_Angeles"))
    except Exception:  # no tz database: Meta's summer offset
        local = datetime.fromtimestamp(moment, tz=timezone(timedelta(hours=-7), "PDT"))
    return local.strftime("%A, %d-%b-%y %H:%M:%S ") + (local.tzname() or "PDT")


def expired_token(*, expired_at: float, now: float) -> GraphError:
    """An access token that has expired: code 190, subcode 463, HTTP 400 (reference §5.3)."""
    message = (
        f"Error validating access token: Session has expired on {_pacific(expired_at)}. "
        f"The current time is {_pacific(now)}."
    )
    return GraphError(
        http_status=400,
        code=190,
        subcode=463,
        message=message,
        www_authenticate=f'OAuth "Facebook Platform" "invalid_token" "{message}"',
    )


def unknown_object(object_id: str, *, method: str = "post") -> GraphError:
    """Unknown (or not permitted) object id: ``GraphMethodException`` code 100, subcode 33."""
    return GraphError(
        http_status=400,
        code=100,
        error_type="GraphMethodException",
        subcode=33,
        message=(
            f"Unsupported {method} request. Object with ID '{object_id}' does not exist, cannot be loaded "
            "due to missing permissions, or does not support this operation. Please read the Graph API "
            f"documentation at {GRAPH_DOCS_URL}"
        ),
    )


def webhook_error(code: int, *, details: str | None = None, title: str | None = None) -> dict[str, Any]:
    """An element of ``statuses[].errors[]`` / ``value.errors[]`` (``message`` equals ``title``)."""
    spec = spec_for(code)
    resolved_title = title or spec.title
    return {
        "code": code,
        "title": resolved_title,
        "message": resolved_title,
        "error_data": {"details": details if details is not None else spec.details},
        "href": ERROR_CODES_HREF,
    }
