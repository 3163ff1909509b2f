"""Stored chat completions: what `store: true` keeps, and what the stored-completions endpoints list, give back,
update and delete, per project."""

import msgspec

from server.completions_protocol import (
    ChatCompletion,
    ChatMessage,
    StoredChatCompletion,
    StoredChatCompletionListQuery,
    StoredChatInput,
    StoredMessage,
    StoredMessageListQuery,
)
from server.errors import not_found
from server.metadata import checked_metadata
from server.pagination import after_cursor, list_page, slice_page
from server.protocol import ListPage
from storage.stored_answers import StoredAnswerRecord, StoredAnswerRepository

_input = msgspec.json.Decoder(StoredChatInput)
_completion = msgspec.json.Decoder(ChatCompletion)


def _stored_message(completion_id: str, index: int, message: ChatMessage) -> StoredMessage:
    parts, content = None, message.content
    if isinstance(content, list):
        parts, content = content, "".join(part.get("text", "") for part in content if part.get("type") == "text")
    return StoredMessage(
        id=f"{completion_id}-{index}", role=message.role, content=content, name=message.name, content_parts=parts,
        tool_calls=message.tool_calls if message.tool_calls is not None else msgspec.UNSET,
        tool_call_id=message.tool_call_id if message.tool_call_id is not None else msgspec.UNSET,
    )


def _stored_completion(record: StoredAnswerRecord) -> StoredChatCompletion:
    completion = _completion.decode(record.answer)
    return StoredChatCompletion(**msgspec.structs.asdict(completion), metadata=record.metadata,
                                tools=_input.decode(record.input).tools)


class StoredCompletions:
    def __init__(self, repository: StoredAnswerRepository):
        self.repository = repository

    def store(self, project: str, request: StoredChatInput, metadata: dict[str, str] | None,
              completion: ChatCompletion) -> None:
        self.repository.insert(StoredAnswerRecord(
            id=completion.id, project=project, kind="chat.completion", model=completion.model,
            created_at=completion.created, metadata=metadata or {}, input=msgspec.Raw(msgspec.json.encode(request)),
            answer=msgspec.Raw(msgspec.json.encode(completion)),
        ))

    def _record(self, project: str, completion_id: str) -> StoredAnswerRecord:
        record = self.repository.get(project, "chat.completion", completion_id)
        if record is None:
            raise not_found("stored chat completion", completion_id, param="completion_id")
        return record

    def get(self, project: str, completion_id: str) -> StoredChatCompletion:
        return _stored_completion(self._record(project, completion_id))

    def page(self, project: str, query: StoredChatCompletionListQuery) -> ListPage[StoredChatCompletion]:
        after = after_cursor(query.after,
                             lambda answer_id: self.repository.cursor_seq(project, "chat.completion", answer_id))
        records, has_more = self.repository.page(project, "chat.completion", query.model, query.metadata, after,
                                                 query.limit, descending=query.order == "desc")
        return list_page([_stored_completion(record) for record in records], [record.id for record in records],
                         has_more)

    def messages(self, project: str, completion_id: str, query: StoredMessageListQuery) -> ListPage[StoredMessage]:
        record = self._record(project, completion_id)
        messages = [_stored_message(completion_id, index, message)
                    for index, message in enumerate(_input.decode(record.input).messages)]
        if query.order == "desc":
            messages.reverse()
        return slice_page(messages, [message.id for message in messages], query.after, query.limit)

    def update(self, project: str, completion_id: str, metadata: dict[str, str] | None) -> StoredChatCompletion:
        record = self._record(project, completion_id)
        record.metadata = checked_metadata(metadata) or {}
        self.repository.update_metadata(record.id, record.metadata)
        return _stored_completion(record)

    def delete(self, project: str, completion_id: str) -> None:
        self.repository.delete(self._record(project, completion_id).id)
