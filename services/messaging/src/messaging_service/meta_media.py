"""The sender's media: Eva's uploads named in a message are put on Meta's side (uploads.ensure_uploaded_to_meta,
reused for 29 days per number) and the message's body names Meta's media ids."""

from __future__ import annotations

from collections.abc import Mapping

import httpx
from eva_common.db import SessionFactory, transaction
from eva_common.ids import parse_id

from messaging_service.clients import SendingProfile
from messaging_service.graph_errors import GraphError
from messaging_service.media_store import MediaStore
from messaging_service.models import MediaUpload
from messaging_service.uploads import ensure_uploaded_to_meta


class MetaMedia:
    def __init__(self, *, sessions: SessionFactory, http: httpx.AsyncClient, graph_url: str, api_version: str,
                 store: MediaStore) -> None:
        self._sessions = sessions
        self._http = http
        self._graph_url = graph_url
        self._api_version = api_version
        self._store = store

    async def __call__(self, tenant_id: str, uploads: list[str], profile: SendingProfile) -> Mapping[str, str]:
        ids: dict[str, str] = {}
        for upload_id in uploads:
            key = parse_id(upload_id)
            async with transaction(self._sessions, tenant_id=tenant_id) as session:
                upload = await session.get(MediaUpload, key) if key is not None else None
            if upload is None or upload.tenant_id != tenant_id:
                raise GraphError(code=None, subcode=None, message=f"the uploaded media {upload_id} is gone",
                                 details=None, http_status=404)
            ids[upload_id] = await ensure_uploaded_to_meta(
                self._sessions, upload, phone_number_id=profile.phone_number_id, access_token=profile.access_token,
                http=self._http, graph_url=self._graph_url, api_version=self._api_version, store=self._store)
        return ids
