"""Line ends and line lengths on the way out (app/delivery/encodings.py), against the
plain reading they must agree with: every CR, LF or CRLF ends a line. The quick path for
what came by SMTP (CRLF only) and the general one must give the same answers."""

from __future__ import annotations

import random
import re

import pytest

from app.delivery import encodings

LINE_END = re.compile(rb"\r\n|\r|\n")


def plainly_crlf(data: bytes) -> bytes:
    data = LINE_END.sub(b"\r\n", data)
    return data if data.endswith(b"\r\n") else data + b"\r\n"


def plainly_too_long(data: bytes) -> bool:
    return any(len(line) > encodings.LINE_LIMIT for line in LINE_END.split(data))


def random_message(chooser: random.Random) -> bytes:
    ends = chooser.choice([[b"\r\n"], [b"\r\n", b"\n"], [b"\r\n", b"\r"], [b"\n"],
                           [b"\r"], [b"\r\n", b"\n", b"\r", b"\n\r"]])
    lines = [b"x" * chooser.choice([0, 1, 76, 997, 998, 999, 1000, 5000])
             for _ in range(chooser.randint(0, 12))]
    data = b"".join(line + chooser.choice(ends) for line in lines)
    return data + (b"tail" * chooser.randint(0, 300) if chooser.random() < 0.3 else b"")


@pytest.mark.parametrize("seed", range(400))
def test_crlf_and_line_length_agree_with_the_plain_reading(seed):
    data = random_message(random.Random(seed))
    assert encodings.crlf(data) == plainly_crlf(data)
    assert encodings._too_long(data) == plainly_too_long(data)
    assert encodings._too_long(encodings.crlf(data)) == plainly_too_long(data)


@pytest.mark.parametrize("data, expected", [
    (b"a\r\nb\r\n", b"a\r\nb\r\n"),            # as SMTP brings it: as it is
    (b"a\r\nb", b"a\r\nb\r\n"),                # the last line ended too
    (b"a\nb\r\n", b"a\r\nb\r\n"),              # one bare LF among CRLFs
    (b"a\rb\r\n", b"a\r\nb\r\n"),              # one bare CR among CRLFs
    (b"a\n\rb", b"a\r\n\r\nb\r\n"),            # LF then CR: two line ends
    (b"\r\r\n\n", b"\r\n\r\n\r\n"),
    (b"", b"\r\n"),
])
def test_every_bare_line_end_becomes_crlf(data, expected):
    assert encodings.crlf(data) == expected


@pytest.mark.parametrize("data, too_long", [
    (b"x" * 998 + b"\r\n", False),
    (b"x" * 999 + b"\r\n", True),
    (b"x" * 998 + b"\rx\r\n", False),          # a bare CR ends the line as well
    (b"x" * 500 + b"\r" + b"x" * 500, False),
    (b"x" * 999, True),
])
def test_a_line_longer_than_998_octets_is_found_however_lines_end(data, too_long):
    assert encodings._too_long(data) is too_long
