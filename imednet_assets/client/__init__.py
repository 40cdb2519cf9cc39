"""httpx-based async client for the iMednet EDC REST API (paging, retries, filters, Arrow)."""

from imednet_assets.client.arrow import ENDPOINTS, SCHEMAS, page_to_batch
from imednet_assets.client.client import ImednetClient
from imednet_assets.client.errors import (
    ImednetAuthError,
    ImednetBadRequest,
    ImednetConnectionError,
    ImednetError,
    ImednetJobFailed,
    ImednetJobTimeout,
    ImednetMalformedResponse,
    ImednetNotFound,
    ImednetRateLimited,
    ImednetServerError,
    ImednetSourceChanged,
)
from imednet_assets.client.filters import (
    Term,
    build_filter,
    build_record_data_filter,
    format_value,
    term,
)
from imednet_assets.client.settings import ClientSettings
from imednet_assets.client.sync import fetch_all_sync, iter_batches_sync, list_studies_sync

__all__ = [
    "ENDPOINTS",
    "SCHEMAS",
    "ClientSettings",
    "ImednetAuthError",
    "ImednetBadRequest",
    "ImednetClient",
    "ImednetConnectionError",
    "ImednetError",
    "ImednetJobFailed",
    "ImednetJobTimeout",
    "ImednetMalformedResponse",
    "ImednetNotFound",
    "ImednetRateLimited",
    "ImednetServerError",
    "ImednetSourceChanged",
    "Term",
    "build_filter",
    "build_record_data_filter",
    "fetch_all_sync",
    "format_value",
    "iter_batches_sync",
    "list_studies_sync",
    "page_to_batch",
    "term",
]
