"""The policy received mail is read with gives what the standard policy gives."""

from email import policy
from email.parser import BytesParser

import pytest

from app.mail import email_policy
from app.mail.email_policy import RECEIVED

HEADERS = [
    ("Subject", "=?utf-8?q?Quartalszahlen_f=C3=BCr_M=C3=A4rz?= and more"),
    ("Subject", "=?bogus-charset?q?broken?= =?utf-8?b?not base64!?="),
    ("From", '"Alice, Finance" <alice@acme.test>, bob@acme.test'),
    ("From", "<<>>@@ not an address"),
    ("Content-Type", 'text/plain; charset="utf-8"; format=flowed'),
    ("Content-Type", "multipart/mixed; boundary=\"=_x\"; boundary=second"),
    ("Content-Type", "text/"),
    ("Content-Disposition", "attachment; filename*=utf-8''r%C3%A9sum%C3%A9.pdf"),
    ("Message-ID", "<1@acme.test>"),
    ("Date", "not a date"),
]


@pytest.mark.parametrize("name,value", HEADERS)
def test_a_header_reads_as_with_the_standard_policy(name, value):
    raw = f"{name}: {value}\n\nbody\n".encode()
    ours = BytesParser(policy=RECEIVED).parsebytes(raw)
    standard = BytesParser(policy=policy.default).parsebytes(raw)
    for _ in range(2):  # the second look-up is the cached one
        mine, theirs = ours[name], standard[name]
        assert (type(mine).__name__, str(mine), [type(d) for d in mine.defects]) == (
            type(theirs).__name__, str(theirs), [type(d) for d in theirs.defects])
    assert ours.get_content_type() == standard.get_content_type()
    assert ours.get_params() == standard.get_params()
    assert ours.as_bytes() == standard.as_bytes()


def test_short_headers_are_parsed_once_and_long_ones_are_not_kept():
    registry = RECEIVED.header_factory
    assert registry("Subject", "Figures") is registry("Subject", "Figures")
    long = "x" * (email_policy.CACHED_VALUE_LIMIT + 1)
    first, second = registry("Subject", long), registry("Subject", long)
    assert first == second == long and first is not second


def test_setting_a_header_on_a_parsed_message_still_counts_it():
    message = BytesParser(policy=RECEIVED).parsebytes(b"Subject: one\n\nbody\n")
    with pytest.raises(ValueError):  # the registry's max_count is still consulted
        message["Subject"] = "two"
