"""Settings (env, normalisation, hidden keys) and error mapping."""

import pytest

from imednet_assets.client import (
    ClientSettings,
    ImednetAuthError,
    ImednetBadRequest,
    ImednetError,
    ImednetNotFound,
    ImednetRateLimited,
    ImednetServerError,
)
from imednet_assets.client.errors import error_for_status
from imednet_assets_tests.client.conftest import API_KEY, SECURITY_KEY

ENV = {
    "IMEDNET_BASE_URL": "https://edc.example.test/api/",
    "IMEDNET_API_KEY": API_KEY,
    "IMEDNET_SECURITY_KEY": SECURITY_KEY,
}


def test_from_env_normalises_like_the_sdk():
    s = ClientSettings.from_env(ENV)
    assert s.base_url == "https://edc.example.test"
    assert (s.api_key, s.security_key) == (API_KEY, SECURITY_KEY)
    assert (s.concurrency, s.page_size, s.max_attempts) == (8, 500, 5)
    assert ClientSettings.from_env(ENV, base_url="http://h:8/prefix/").base_url == "http://h:8/prefix"
    assert ClientSettings.from_env(ENV, concurrency=2).concurrency == 2


def test_from_env_names_missing_variables():
    with pytest.raises(ValueError, match="missing environment variables: IMEDNET_SECURITY_KEY"):
        ClientSettings.from_env({k: v for k, v in ENV.items() if k != "IMEDNET_SECURITY_KEY"})


def test_repr_and_str_hide_keys():
    s = ClientSettings.from_env(ENV)
    for text in (repr(s), str(s), f"{s}"):
        assert API_KEY not in text and SECURITY_KEY not in text
        assert "edc.example.test" in text
    assert s.host == "edc.example.test"


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"page_size": 501}, "page_size must be 1..500, got 501"),
        ({"page_size": 0}, "page_size must be 1..500, got 0"),
        ({"concurrency": 0}, "concurrency must be >= 1, got 0"),
        ({"max_attempts": 0}, "max_attempts must be >= 1, got 0"),
    ],
)
def test_settings_validation(kw, message):
    with pytest.raises(ValueError, match=message):
        ClientSettings("http://h", "k", "s", **kw)


def test_status_mapping_and_messages():
    body = {"metadata": {"error": {"code": "9000", "description": "Unknown error"}}}
    err = error_for_status(503, body, endpoint="records", study_key="CARDIO-01", attempts=5)
    assert type(err) is ImednetServerError
    assert str(err) == (
        "records for study CARDIO-01: HTTP 503 after 5 attempts (code 9000: Unknown error)"
    )
    assert (err.endpoint, err.study_key, err.status, err.code, err.attempts) == (
        "records", "CARDIO-01", 503, "9000", 5,
    )
    bad = error_for_status(
        400,
        {"metadata": {"error": {"code": "1000", "description": "Field raised validation errors",
                                "field": {"attribute": "page", "value": "XX"}}}},
        endpoint="studies", study_key=None, attempts=1,
    )  # fmt: skip
    assert type(bad) is ImednetBadRequest
    assert (bad.field_attribute, bad.field_value, bad.code) == ("page", "XX", "1000")
    assert str(bad) == (
        "studies: HTTP 400 (code 1000: Field raised validation errors) [field page='XX']"
    )
    kinds = {401: ImednetAuthError, 403: ImednetAuthError, 404: ImednetNotFound,
             429: ImednetRateLimited, 500: ImednetServerError, 418: ImednetError}  # fmt: skip
    for status, cls in kinds.items():
        err = error_for_status(status, None, endpoint="sites", study_key="S", attempts=1)
        assert type(err) is cls and str(err) == f"sites for study S: HTTP {status}"
