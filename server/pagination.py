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


def slice_page(items: Sequence[T], ids: Sequence[str], after: str | None, limit: int) -> ListPage[T]:
    """A page of a list held whole, in the order given: the `limit` items after the one whose id is `after`."""
    position = after_cursor(after, lambda item_id: ids.index(item_id) if item_id in ids else None)
    start = 0 if position is None else position + 1
    return list_page(items[start:start + limit], ids[start:start + limit], start + limit < len(items))
