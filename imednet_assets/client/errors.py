"""Typed errors of the iMednet client: one clear line, never headers, keys or credentialed URLs."""

from __future__ import annotations

from typing import Any


def target(endpoint: str | None, study_key: str | None) -> str:
    """`records for study CARDIO-01`, or just the endpoint for study-less calls."""
    name = endpoint or "request"
    return f"{name} for study {study_key}" if study_key else name


class ImednetError(Exception):
    """Base of every client error; carries where it happened and what the server said."""

    def __init__(
        self,
        message: str,
        *,
        endpoint: str | None = None,
        study_key: str | None = None,
        status: int | None = None,
        code: str | None = None,
        description: str | None = None,
        attempts: int | None = None,
    ) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.study_key = study_key
        self.status = status
        self.code = code
        self.description = description
        self.attempts = attempts


class ImednetAuthError(ImednetError):
    """401/403: keys rejected, or a study the keys may not see."""


class ImednetNotFound(ImednetError):
    """404."""


class ImednetBadRequest(ImednetError):
    """400: the server names the offending request attribute and value."""

    def __init__(
        self,
        message: str,
        *,
        field_attribute: str | None = None,
        field_value: Any = None,
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.field_attribute = field_attribute
        self.field_value = field_value


class ImednetRateLimited(ImednetError):
    """429 after every attempt."""


class ImednetServerError(ImednetError):
    """5xx after every attempt (or once, for a POST that must not be repeated)."""


class ImednetConnectionError(ImednetError):
    """Network failure or timeout after every attempt."""


class ImednetMalformedResponse(ImednetError):
    """A body that is not the documented JSON shape, or a value outside the entity's schema."""


class ImednetSourceChanged(ImednetError):
    """The listing changed size while its pages were read: offset paging may have skipped or
    repeated rows, so the read is refused (running it again reads a consistent listing)."""


class ImednetJobFailed(ImednetError):
    """A record-import job ended in a failed/cancelled state."""


class ImednetJobTimeout(ImednetError, TimeoutError):
    """A record-import job did not finish in time."""


def _server_error_fields(body: Any) -> dict[str, Any]:
    """code/description/field from the documented `metadata.error` object, if present."""
    if not isinstance(body, dict):
        return {}
    meta = body.get("metadata")
    error = meta.get("error") if isinstance(meta, dict) else None
    if not isinstance(error, dict) or not error:
        return {}
    out: dict[str, Any] = {}
    if error.get("code") is not None:
        out["code"] = str(error["code"])
    if error.get("description") is not None:
        out["description"] = str(error["description"])
    fld = error.get("field")
    if isinstance(fld, dict):
        out["field_attribute"] = fld.get("attribute")
        out["field_value"] = fld.get("value")
    return out


def error_for_status(
    status: int,
    body: Any,
    *,
    endpoint: str | None,
    study_key: str | None,
    attempts: int,
) -> ImednetError:
    """Map a final HTTP error status (and its parsed body, if any) to the typed error."""
    info = _server_error_fields(body)
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    detail = ""
    if "code" in info or "description" in info:
        detail = f" (code {info.get('code', '?')}: {info.get('description', '')})"
    if info.get("field_attribute") is not None:
        detail += f" [field {info['field_attribute']}={info.get('field_value')!r}]"
    message = f"{target(endpoint, study_key)}: HTTP {status}{tries}{detail}"
    common = dict(
        endpoint=endpoint,
        study_key=study_key,
        status=status,
        code=info.get("code"),
        description=info.get("description"),
        attempts=attempts,
    )
    if status == 400:
        return ImednetBadRequest(
            message,
            field_attribute=info.get("field_attribute"),
            field_value=info.get("field_value"),
            **common,
        )
    cls: type[ImednetError]
    if status in (401, 403):
        cls = ImednetAuthError
    elif status == 404:
        cls = ImednetNotFound
    elif status == 429:
        cls = ImednetRateLimited
    elif status >= 500:
        cls = ImednetServerError
    else:
        cls = ImednetError
    return cls(message, **common)
