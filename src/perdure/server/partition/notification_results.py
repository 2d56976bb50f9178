"""Setting the result of a notification message (the `value` / `failure` / `void` oneof that
every notification shares), so that a present-but-empty value is never lost."""

from __future__ import annotations

__all__ = ["set_failure", "set_value", "set_void"]


def set_value(note, content: bytes) -> None:
    """Set `note.value`, present even when `content` is empty."""
    note.value.SetInParent()
    note.value.content = content


def set_failure(note, failure: tuple[int, str]) -> None:
    note.failure.SetInParent()
    note.failure.code, note.failure.message = failure


def set_void(note) -> None:
    note.void.SetInParent()
