"""The filter builders, tested as text."""

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from imednet_assets.client.filters import (
    build_filter,
    build_record_data_filter,
    check_record_data_filter,
    format_value,
    term,
)


def test_and_or_joins_and_plain_values():
    both = build_filter(term("formId", ">", 10), term("formKey", "==", "VS"))
    assert both == "formId>10;formKey==VS"
    assert build_filter(term("siteId", "==", 1), term("siteId", "==", 2), mode="or") == (
        "siteId==1,siteId==2"
    )
    assert str(term("subjectKey", "==", "01-001")) == "subjectKey==01-001"
    assert str(term("visitDate", "<", date(2019, 3, 19))) == "visitDate<2019-03-19"
    assert str(term("score", ">=", 37.5)) == "score>=37.5"


def test_values_outside_the_safe_set_are_quoted_and_escaped():
    assert str(term("siteName", "==", "Chicago Hope")) == 'siteName=="Chicago Hope"'
    # an injection attempt stays one quoted value
    assert str(term("formKey", "==", 'VS;deleted==true')) == 'formKey=="VS;deleted==true"'
    assert format_value('say "hi" \\o/') == '"say \\"hi\\" \\\\o/"'
    assert format_value("") == '""'


def test_datetimes_are_utc_zulu_and_booleans_lower_case():
    assert format_value(datetime(2024, 1, 2, 3, 4, 5)) == '"2024-01-02T03:04:05Z"'
    paris = timezone(timedelta(hours=2))
    assert format_value(datetime(2024, 1, 2, 3, 4, 5, tzinfo=paris)) == '"2024-01-02T01:04:05Z"'
    assert format_value(datetime(2024, 1, 2, tzinfo=UTC)) == '"2024-01-02T00:00:00Z"'
    assert str(term("deleted", "==", False)) == "deleted==false"
    assert str(term("deleted", "!=", True)) == "deleted!=true"


@pytest.mark.parametrize("name", ["form key", "1abc", "a-b", "a;b", "", "x==1"])
def test_bad_attribute_names_are_refused(name):
    with pytest.raises(ValueError, match="invalid filter attribute name"):
        term(name, "==", 1)


@pytest.mark.parametrize("op", ["=", "<>", "===", "=~", " =="])
def test_bad_operators_are_refused(op):
    with pytest.raises(ValueError, match="invalid filter operator"):
        term("formId", op, 1)


def test_contains_operator_only_in_record_data_filter():
    contains = term("aeterm", "=~", "bronch", record_data=True)
    assert build_record_data_filter(contains, term("AGE", ">", 65, record_data=True)) == (
        "aeterm=~bronch;AGE>65"
    )
    with pytest.raises(ValueError, match="only allowed in recordDataFilter"):
        build_filter(contains)


def test_record_data_filter_never_mixes_connectors():
    assert check_record_data_filter("a==1;b==2") == "a==1;b==2"
    assert check_record_data_filter('a=="x,y";b==2') == 'a=="x,y";b==2'  # comma inside quotes
    with pytest.raises(ValueError, match="may not mix"):
        check_record_data_filter("a==1;b==2,c==3")
    with pytest.raises(ValueError, match="mode must be"):
        build_record_data_filter(term("a", "==", 1), mode="xor")  # type: ignore[arg-type]


def test_unsupported_values_and_raw_strings_are_refused():
    with pytest.raises(TypeError, match="unsupported filter value type NoneType"):
        term("a", "==", None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be built with term"):
        build_filter("formId>1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one term"):
        build_filter()
