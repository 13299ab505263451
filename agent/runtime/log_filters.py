"""The filters of the OCPP message log as SQL: one meaning for ``ocpp-agent log`` (MessageLog.query) and
the dashboard's ``/log`` and ``/api/log`` (agent.web.logdb), so a search finds the same frames in both."""

from __future__ import annotations


def filter_clause(*, since: float | None = None, until: float | None = None, action: str | None = None,
                  direction: str | None = None, grep: str | None = None, before_id: int | None = None,
                  after_id: int | None = None) -> tuple[str, list]:
    """The WHERE clause (with its leading space, or "" for no filter) over table ``frames``, and its parameters.

    ``since``/``until`` bound the Unix time inclusively; ``action`` matches without regard to case (and
    uses the action index); ``grep`` is a case-insensitive substring of the frame; ``before_id`` and
    ``after_id`` are the paging cursors (row ids). None (or an empty ``grep``) means "any".
    """
    clauses = (
        ("ts >= ?", since),
        ("ts <= ?", until),
        ("action = ? COLLATE NOCASE", action),
        ("direction = ?", direction),
        ("instr(lower(frame), lower(?)) > 0", grep or None),
        ("id < ?", before_id),
        ("id > ?", after_id),
    )
    used = [(clause, value) for clause, value in clauses if value is not None]
    if not used:
        return "", []
    return " WHERE " + " AND ".join(clause for clause, _ in used), [value for _, value in used]
