"""gRPC MessagingService: proto <-> domain mapping only; DomainErrors are mapped by the shared interceptor."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from eva.messaging.v1 import messaging_pb2, messaging_pb2_grpc
from eva_common.admission import AdmissionGate
from eva_common.audit import Actor
from eva_common.auth import current_principal
from eva_common.errors import InvalidArgument, Unavailable
from eva_common.grpc.metadata import request_meta
from eva_common.timefmt import rfc3339

from messaging_service.models import MediaUpload, MessageStatus, Template
from messaging_service.reading import ReadingService
from messaging_service.sending import SendingService, SendRequest
from messaging_service.service import MessageRecord, MessagingService
from messaging_service.template_sync import TemplateSyncer
from messaging_service.templates import TemplateFilter, TemplateReader
from messaging_service.uploads import MediaUploads, UploadHeader

SERVICE_NAME = messaging_pb2.DESCRIPTOR.services_by_name["MessagingService"].full_name


def _json(value: Any) -> str:
    return "" if value is None else json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def media_message(media: dict[str, Any] | None) -> messaging_pb2.Media | None:
    if not media:
        return None
    return messaging_pb2.Media(
        status=str(media.get("status") or ""),
        media_id=str(media.get("mediaId") or ""),
        mime_type=str(media.get("mimeType") or ""),
        sha256=str(media.get("sha256") or ""),
        size=int(media.get("size") or 0),
        filename=str(media.get("filename") or ""),
        caption=str(media.get("caption") or ""),
        error=str(media.get("error") or ""),
    )


def status_change(status: MessageStatus) -> messaging_pb2.StatusChange:
    return messaging_pb2.StatusChange(
        status=status.status, occurred_at=rfc3339(status.occurred_at), error_json=_json(status.errors))


def message_message(record: MessageRecord) -> messaging_pb2.Message:
    message = record.message
    return messaging_pb2.Message(
        id=str(message.id),
        tenant_id=message.tenant_id,
        conversation_id=str(message.conversation_id),
        contact_id=str(message.contact_id),
        wamid=message.wamid or "",
        direction=message.direction,
        type=message.type,
        status=message.status,
        content_json=_json(message.content),
        sent_at=rfc3339(message.sent_at),
        created_at=rfc3339(message.created_at),
        updated_at=rfc3339(message.updated_at),
        context_json=_json(message.context),
        referral_json=_json(message.referral),
        error_json=_json(message.error),
        media=media_message(message.media),
        status_history=[status_change(status) for status in record.history],
        pricing_category=message.pricing_category or "",
        reactions_json=_json(message.reactions),
        sender=sender_message(message.sender),
        source=message.source or "",
        attempts=message.attempts or 0,
        read_at=rfc3339(message.read_at) if message.read_at else "",
        category=message.category or "",
    )


def sender_message(sender: dict[str, Any] | None) -> messaging_pb2.Sender | None:
    if not sender:
        return None
    return messaging_pb2.Sender(kind=str(sender.get("kind") or ""), id=str(sender.get("id") or ""),
                                name=str(sender.get("name") or ""))


def _content(request: messaging_pb2.SendMessageRequest) -> Any:
    if not request.content_json:
        return None
    try:
        return json.loads(request.content_json)
    except ValueError:
        raise InvalidArgument("content_json is not JSON", code="VALIDATION_FAILED") from None


def uploaded_media(upload: MediaUpload) -> messaging_pb2.UploadedMedia:
    return messaging_pb2.UploadedMedia(
        id=str(upload.id), mime_type=upload.mime_type, size=upload.size, filename=upload.filename or "",
        sha256=upload.sha256, kind=upload.kind, created_at=rfc3339(upload.created_at))


class MessagingServicer(messaging_pb2_grpc.MessagingServiceServicer):
    def __init__(
        self, *, service: MessagingService, admission: AdmissionGate, sending: SendingService | None = None,
        reading: ReadingService | None = None, uploads: MediaUploads | None = None,
        templates: TemplateReader | None = None, template_syncer: TemplateSyncer | None = None,
    ) -> None:
        self._service = service
        self._admission = admission  # SendMessage and RetryMessage
        self._sending = sending
        self._reading = reading
        self._templates = templates
        self._template_syncer = template_syncer
        self._uploads = uploads

    async def UploadMedia(
        self, request_iterator: AsyncIterator[messaging_pb2.UploadMediaChunk], context: grpc.aio.ServicerContext
    ) -> messaging_pb2.UploadedMedia:
        """The first chunk carries the MIME type, filename, kind (and a service's tenant); every chunk data."""
        assert self._uploads is not None, "UploadMedia is served only with MediaUploads"
        requests = aiter(request_iterator)
        first = await anext(requests, messaging_pb2.UploadMediaChunk())

        async def data() -> AsyncIterator[bytes]:
            if first.data:
                yield first.data
            async for chunk in requests:
                if chunk.data:
                    yield chunk.data

        upload = await self._uploads.upload(
            principal=current_principal(),
            header=UploadHeader(mime_type=first.mime_type, filename=first.filename, kind=first.kind,
                                tenant_id=first.tenant_id),
            chunks=data())
        return uploaded_media(upload)

    async def SendMessage(
        self, request: messaging_pb2.SendMessageRequest, context: grpc.aio.ServicerContext
    ) -> messaging_pb2.SendMessageResponse:
        assert self._sending is not None, "SendMessage is served only with a SendingService"
        principal = current_principal()
        sender = ({"kind": request.sender.kind, "id": request.sender.id, "name": request.sender.name}
                  if request.HasField("sender") else None)
        async with self._admission.admitted(time_remaining=context.time_remaining()):
            result = await self._sending.send(
                principal=principal,
                request=SendRequest(conversation_id=request.conversation_id, type=request.type,
                                    content=_content(request), reply_to_message_id=request.reply_to_message_id,
                                    idempotency_key=request.idempotency_key, sender=sender,
                                    priority=request.priority, tenant_id=request.tenant_id),
                actor=Actor(principal, request_meta(context)))
        return messaging_pb2.SendMessageResponse(
            message=message_message(MessageRecord(message=result.message, history=[])), replayed=result.replayed)

    async def RetryMessage(
        self, request: messaging_pb2.RetryMessageRequest, context: grpc.aio.ServicerContext
    ) -> messaging_pb2.Message:
        assert self._sending is not None, "RetryMessage is served only with a SendingService"
        principal = current_principal()
        async with self._admission.admitted(time_remaining=context.time_remaining()):
            message = await self._sending.retry(principal=principal, message_id=request.message_id,
                                                tenant_id=request.tenant_id,
                                                actor=Actor(principal, request_meta(context)))
        record = await self._service.get_message(principal=principal, message_id=str(message.id),
                                                 tenant_id=request.tenant_id)
        return message_message(record)

    async def MarkRead(
        self, request: messaging_pb2.MarkReadRequest, context: grpc.aio.ServicerContext
    ) -> messaging_pb2.MarkReadResponse:
        assert self._reading is not None, "MarkRead is served only with a ReadingService"
        result = await self._reading.mark_read(principal=current_principal(), message_id=request.message_id,
                                               conversation_id=request.conversation_id, tenant_id=request.tenant_id)
        return messaging_pb2.MarkReadResponse(
            conversation_id=result.conversation_id, message_id=result.message_id or "", marked=result.marked,
            read_at=rfc3339(result.read_at), receipt_sent=result.receipt_sent)

    async def SendTyping(
        self, request: messaging_pb2.SendTypingRequest, context: grpc.aio.ServicerContext
    ) -> messaging_pb2.SendTypingResponse:
        assert self._reading is not None, "SendTyping is served only with a ReadingService"
        outcome = await self._reading.typing(principal=current_principal(), conversation_id=request.conversation_id,
                                             tenant_id=request.tenant_id)
        return messaging_pb2.SendTypingResponse(outcome=outcome)

    async def ListMessages(
        self, request: messaging_pb2.ListMessagesRequest, context: grpc.aio.ServicerContext
    ) -> messaging_pb2.ListMessagesResponse:
        page = await self._service.list_messages(
            principal=current_principal(),
            conversation_id=request.conversation_id,
            limit=request.limit,
            cursor=request.cursor,
            tenant_id=request.tenant_id,
            latest=request.latest,
        )
        return messaging_pb2.ListMessagesResponse(
            items=[message_message(item) for item in page.items], next_cursor=page.next_cursor or ""
        )

    async def GetMessage(
        self, request: messaging_pb2.GetMessageRequest, context: grpc.aio.ServicerContext
    ) -> messaging_pb2.Message:
        message = await self._service.get_message(
            principal=current_principal(), message_id=request.message_id, tenant_id=request.tenant_id
        )
        return message_message(message)

    async def GetMessageMedia(
        self, request: messaging_pb2.GetMessageMediaRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[messaging_pb2.MediaChunk]:
        """The first chunk carries the MIME type, size and filename; every chunk at most 64 KiB."""
        download = await self._service.get_media(principal=current_principal(), message_id=request.message_id)
        first = True
        async for data in download.chunks:
            if first:
                yield messaging_pb2.MediaChunk(data=data, mime_type=download.mime_type, size=download.size,
                                               filename=download.filename)
                first = False
            else:
                yield messaging_pb2.MediaChunk(data=data)
        if first:  # an empty file: still one chunk with the metadata
            yield messaging_pb2.MediaChunk(mime_type=download.mime_type, size=download.size,
                                           filename=download.filename)


    async def ListTemplates(
        self, request: messaging_pb2.ListTemplatesRequest, context: grpc.aio.ServicerContext
    ) -> messaging_pb2.ListTemplatesResponse:
        page = await self._template_reader().list_templates(
            principal=current_principal(),
            filters=TemplateFilter(status=request.status, category=request.category, language=request.language,
                                   quality=request.quality, name=request.name),
            limit=request.limit, cursor=request.cursor, tenant_id=request.tenant_id)
        return messaging_pb2.ListTemplatesResponse(
            items=[template_message(item) for item in page.items], next_cursor=page.next_cursor or "",
            synced_at=rfc3339(page.synced_at) if page.synced_at else "")

    async def SyncTemplates(
        self, request: messaging_pb2.SyncTemplatesRequest, context: grpc.aio.ServicerContext
    ) -> messaging_pb2.SyncTemplatesResponse:
        if self._template_syncer is None:
            raise Unavailable("templates are not served by this process", code="UNAVAILABLE")
        result = await self._template_syncer.sync_templates(principal=current_principal(), tenant_id=request.tenant_id)
        return messaging_pb2.SyncTemplatesResponse(
            fetched=result.fetched, created=result.created, updated=result.updated, removed=result.removed,
            synced_at=rfc3339(result.synced_at))

    def _template_reader(self) -> TemplateReader:
        if self._templates is None:
            raise Unavailable("templates are not served by this process", code="UNAVAILABLE")
        return self._templates


def template_message(template: Template) -> messaging_pb2.Template:
    return messaging_pb2.Template(
        id=str(template.id), name=template.name, language=template.language, status=template.status,
        category=template.category or "", quality=template.quality or "",
        parameter_format=template.parameter_format or "", components_json=_json(template.components or []),
        rejected_reason=template.rejected_reason or "", updated_at=rfc3339(template.updated_at),
        meta_id=template.meta_id or "")


def registrar(servicer: MessagingServicer) -> Callable[[grpc.aio.Server], None]:
    def register(server: grpc.aio.Server) -> None:
        messaging_pb2_grpc.add_MessagingServiceServicer_to_server(servicer, server)

    return register
