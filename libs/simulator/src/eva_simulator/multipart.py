"""A small ``multipart/form-data`` reader for the fake media upload (standard library only).

Parts are read with :mod:`email`'s byte parser, which keeps binary part bodies byte for byte.
"""

from dataclasses import dataclass
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP


@dataclass(frozen=True)
class FormPart:
    name: str
    data: bytes
    filename: str | None = None
    content_type: str | None = None

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


class MultipartError(ValueError):
    """The body is not a readable multipart/form-data body."""


def parse_form(content_type: str, body: bytes) -> dict[str, FormPart]:
    """The parts of a ``multipart/form-data`` body by field name (the first part of a repeated name wins)."""
    if not content_type.lower().startswith("multipart/form-data") or "boundary=" not in content_type.lower():
        raise MultipartError("Content-Type must be multipart/form-data with a boundary")
    header = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1", errors="replace")
    message = BytesParser(policy=HTTP).parsebytes(header + body)
    if not message.is_multipart():
        raise MultipartError("the body has no parts")
    parts: dict[str, FormPart] = {}
    for part in message.iter_parts():
        if not isinstance(part, Message):
            continue
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or not name:
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        declared = part.get("content-type")
        parts.setdefault(
            name,
            FormPart(
                name=name, data=data, filename=filename, content_type=part.get_content_type() if declared else None
            ),
        )
    return parts
