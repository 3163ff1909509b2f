"""Cursor pagination in OpenAI's shape: `after=<id of the last item seen>`, `limit`, `has_more`."""

from collections.abc import Callable, Sequence
from typing import TypeVar

from server.errors import invalid_request
from server.protocol import ListPage

T = TypeVar("T")


def after_cursor(after: str | None, resolve: Callable[[str], int | None]) -> int | None:
    """The storage position named by `?after=`, or None. An id that never existed is a 400."""
    if not after:
        return None
    position = resolve(after)
    if position is None:
        raise invalid_request(f"Invalid 'after': no object with id {after!r} in this listing.", param="after")
    return position


def list_page(items: Sequence[T], ids: Sequence[str], has_more: bool) -> ListPage[T]:
    """A page of items, each with its id (the items may be encoded answers, which name no id themselves)."""
    return ListPage(data=list(items), has_more=has_more, first_id=ids[0] if ids else None,
                    last_id=ids[-1] if ids else None)
