"""Stored responses (`store`, true unless a request says false): given back, deleted, their input items listed,
and continued by `previous_response_id`.

Each keeps the whole conversation it answered, so continuing one reads one row, however long the chain, and a
response stays continuable when one it followed is deleted.
"""

import msgspec

from server.errors import APIError, not_found
from server.pagination import slice_page
from server.protocol import ListPage
from server.responses_api.protocol import InputItemListQuery, Item, Response, StoredResponseInput
from storage.stored_answers import StoredAnswerRecord, StoredAnswerRepository

_input = msgspec.json.Decoder(StoredResponseInput)
_response = msgspec.json.Decoder(Response)


class StoredResponses:
    def __init__(self, repository: StoredAnswerRepository):
        self.repository = repository

    def store(self, project: str, response: Response, stored_input: StoredResponseInput) -> None:
        self.repository.insert(StoredAnswerRecord(
            id=response.id, project=project, kind="response", model=response.model, created_at=response.created_at,
            metadata=response.metadata, input=msgspec.Raw(msgspec.json.encode(stored_input)),
            answer=msgspec.Raw(msgspec.json.encode(response)),
        ))

    def _record(self, project: str, response_id: str) -> StoredAnswerRecord:
        record = self.repository.get(project, "response", response_id)
        if record is None:
            raise not_found("response", response_id, param="response_id")
        return record

    def get(self, project: str, response_id: str) -> Response:
        return _response.decode(self._record(project, response_id).answer)

    def conversation(self, project: str, response_id: str) -> list[Item]:
        """Everything a response read and answered: the items a response continuing it follows."""
        record = self.repository.get(project, "response", response_id)
        if record is None:
            raise APIError(404, f"Previous response with id '{response_id}' not found.",
                           param="previous_response_id", code="previous_response_not_found")
        stored = _input.decode(record.input)
        return [*stored.context, *stored.items, *_response.decode(record.answer).output]

    def input_items(self, project: str, response_id: str, query: InputItemListQuery) -> ListPage[Item]:
        """The items the response read, the conversation it continued included; newest first unless `order=asc`."""
        stored = _input.decode(self._record(project, response_id).input)
        items = [*stored.context, *stored.items]
        if query.order == "desc":
            items.reverse()
        return slice_page(items, [item.id for item in items], query.after, query.limit)

    def delete(self, project: str, response_id: str) -> None:
        self.repository.delete(self._record(project, response_id).id)
