"""A message as the next server can take it, and what MAIL FROM must declare of it.

The stored message is what the sender sent: it may hold 8-bit text, raw UTF-8 in its
headers, lines up to the ingress's limit (well over SMTP's 998 octets) and bare LF or CR
line ends. On the way out, as Postfix does:

- every line ends in CRLF: a bare LF or CR ends a line too (as the ``email`` parser and
  the ingress's header stripping read them), so none goes onward;
- 8-bit content goes with ``BODY=8BITMIME`` to a server that offers it; to one that does
  not, each 8-bit part is re-encoded (quoted-printable for text, base64 otherwise);
- raw UTF-8 in the headers, or an address that is not ASCII, needs ``SMTPUTF8``: where
  the server does not offer it the message cannot go (5.6.7);
- no line is longer than 998 octets (RFC 5322 section 2.1.1): a part with a longer line
  is re-encoded as quoted-printable, a longer header line folded at a blank (or, with
  none, broken as Postfix's smtp_line_length_limit does);
- a part under multipart/signed goes byte for byte or not at all (5.6.3): re-encoding it
  would break the signature (RFC 1847 section 2.1).

A message that needs none of this leaves as it was stored (less its line ends); one
that needs it is re-written part by part, every header and part that needs nothing
written as it was read.
"""

from __future__ import annotations

import binascii
import io
import re
from dataclasses import dataclass
from email import encoders
from email.generator import BytesGenerator
from email.message import Message
from email.parser import BytesParser
from email.policy import Compat32

from app.delivery.destinations import DeliveryFailed

#: the longest line SMTP carries, without its CRLF (RFC 5321 4.5.3.1.6, RFC 5322 2.1.1)
LINE_LIMIT = 998

_LINE_END = re.compile(rb"\r\n|\r|\n")
_LINE_END_TEXT = re.compile(_LINE_END.pattern.decode())
_HEADER_END = re.compile(rb"\r\n\r\n")
#: content transfer encodings under which the body is the content as it is
_AS_IS = ("", "7bit", "8bit", "binary")


def _too_long(text: bytes | str) -> bool:
    """Whether a line of ``text`` is longer than LINE_LIMIT. (Splitting is linear; a
    search for 999 characters that are not a line end tried again at every offset
    took ~8 ms on a 10 KB message, most of a delivery's CPU.)"""
    if len(text) <= LINE_LIMIT:
        return False
    if isinstance(text, bytes):
        lines = text.split(b"\r\n") if _crlf_only(text) else _LINE_END.split(text)
    else:
        lines = _LINE_END_TEXT.split(text)
    return max(map(len, lines)) > LINE_LIMIT


def _crlf_only(data: bytes) -> bool:
    """Whether every line end in ``data`` is a CRLF, as in what came by SMTP: three
    counts in C, a fifth of the time a regular expression takes over it."""
    pairs = data.count(b"\r\n")
    return data.count(b"\n") == pairs and data.count(b"\r") == pairs


@dataclass(frozen=True)
class Wire:
    """The bytes to send, and the MAIL FROM parameters they need."""

    data: bytes
    mail_options: tuple[str, ...]


def crlf(raw: bytes) -> bytes:
    """``raw`` with every line ending in CRLF, the last one too."""
    data = raw if _crlf_only(raw) else _LINE_END.sub(b"\r\n", raw)
    return data if data.endswith(b"\r\n") else data + b"\r\n"


def utf8_headers(data: bytes) -> bool:
    """Whether the message's own headers hold raw UTF-8 (or any 8-bit byte): then it
    needs SMTPUTF8 (RFC 6532). Headers of MIME parts and attached messages are content."""
    match = _HEADER_END.search(data)
    return not data[: match.start() if match else len(data)].isascii()


def for_server(raw: bytes, *, eight_bit_mime: bool, smtputf8: bool, utf8_addresses: bool,
               host: str) -> Wire:
    """``raw`` as the server ``host``, offering what it says it offers, may take it, or
    a permanent DeliveryFailed saying why it cannot."""
    data = crlf(raw)
    needs_smtputf8 = utf8_addresses or utf8_headers(data)
    if needs_smtputf8 and not smtputf8:
        raise DeliveryFailed(f"5.6.7 {host} does not offer SMTPUTF8, which the message "
                             f"needs for its {'addresses' if utf8_addresses else 'headers'}"
                             f" that are not ASCII", permanent=True)
    seven_bit = not eight_bit_mime
    if (seven_bit and not _body(data).isascii()) or _too_long(data):
        data = _rewritten(data, seven_bit, host)
    options = []
    if eight_bit_mime and not data.isascii():
        options.append("BODY=8BITMIME")
    if needs_smtputf8:
        options.append("SMTPUTF8")
    return Wire(data, tuple(options))


def _body(data: bytes) -> bytes:
    match = _HEADER_END.search(data)
    return data[match.end():] if match else b""


# --- re-writing a message part by part ----------------------------------------------------


class _Read(str):
    """A header's value as compat32 reads it, with the lines it was read from."""

    source: str

    def __new__(cls, value: str, source: str) -> _Read:
        read = super().__new__(cls, value)
        read.source = source
        return read


class _Verbatim(Compat32):
    """compat32 that writes every header it read as it read it, only folding a line
    over the limit; headers set anew are written as compat32 writes them."""

    def header_source_parse(self, sourcelines):
        name, value = super().header_source_parse(sourcelines)
        return name, _Read(value, "".join(sourcelines))

    def fold_binary(self, name, value):
        if isinstance(value, _Read):
            return fold(value.source.encode("ascii", "surrogateescape"))
        return super().fold_binary(name, value)


_POLICY = _Verbatim(linesep="\r\n", max_line_length=0)


def _rewritten(data: bytes, seven_bit: bool, host: str) -> bytes:
    message = BytesParser(policy=_POLICY).parsebytes(data)
    _reencode(message, seven_bit, host, signed=False)
    for part in message.walk():
        # What a signature covers must go as it came, which writing it out anew does
        # not promise for every shape of part: check it does.
        if part.get_content_type() == "multipart/signed" and not all(
                _flat(child) in data for child in part.get_payload()):
            raise _unaltered_impossible(host)
    written = fold(_flat(message))
    if seven_bit and not _body(written).isascii():
        raise DeliveryFailed(f"5.6.3 {host} does not offer 8BITMIME, and the message has "
                             f"8-bit text outside its parts' bodies", permanent=True)
    return written


def _reencode(part: Message, seven_bit: bool, host: str, signed: bool) -> None:
    """Re-encode each leaf of ``part`` that the server cannot take as it is."""
    if part.is_multipart():
        signed = signed or part.get_content_type() == "multipart/signed"
        for child in part.get_payload():
            _reencode(child, seven_bit, host, signed)
        if seven_bit and _transfer_encoding(part) in ("8bit", "binary"):
            _set_transfer_encoding(part, "7bit")  # what it holds is 7-bit now
        return
    if not _needs_reencoding(part, seven_bit):
        return
    if signed:
        raise _unaltered_impossible(host)
    content = part.get_payload(decode=True)
    if part.get_content_maintype() == "text":
        # Its line breaks stay line breaks; only what is not 7-bit safe is written =XX.
        _set_transfer_encoding(part, "quoted-printable")
        part.set_payload(binascii.b2a_qp(content, istext=True).decode("ascii"))
    else:
        del part["Content-Transfer-Encoding"]
        part.set_payload(content)
        encoders.encode_base64(part)


def _needs_reencoding(part: Message, seven_bit: bool) -> bool:
    if _transfer_encoding(part) in _AS_IS:
        body = part.get_payload(decode=True)  # the bytes as they are
        return (seven_bit and not body.isascii()) or _too_long(body)
    # quoted-printable or base64: the text as written (8-bit in it shows as not ASCII)
    body = part.get_payload()
    return (seven_bit and not body.isascii()) or _too_long(body)


def _transfer_encoding(part: Message) -> str:
    return str(part.get("Content-Transfer-Encoding", "")).strip().lower()


def _set_transfer_encoding(part: Message, value: str) -> None:
    if "Content-Transfer-Encoding" in part:
        part.replace_header("Content-Transfer-Encoding", value)
    else:
        part["Content-Transfer-Encoding"] = value


def _unaltered_impossible(host: str) -> DeliveryFailed:
    return DeliveryFailed(f"5.6.3 A signed part (multipart/signed) of the message would "
                          f"have to be re-encoded for {host}, which would break its "
                          f"signature", permanent=True)


def _flat(part: Message) -> bytes:
    out = io.BytesIO()
    BytesGenerator(out, mangle_from_=False, policy=_POLICY).flatten(part)
    return out.getvalue()


# --- long lines ----------------------------------------------------------------------------


def fold(lines: bytes) -> bytes:
    """``lines`` (CRLF-terminated) with none longer than LINE_LIMIT: a longer one is
    folded at its last blank that leaves text on both sides, or else broken by a CRLF and
    a space, as Postfix's smtp_line_length_limit does. Unfolding gives back the text."""
    if not _too_long(lines):
        return lines
    out = []
    for line in lines.split(b"\r\n"):
        while len(line) > LINE_LIMIT:
            cut = max(line.rfind(b" ", 1, LINE_LIMIT + 1), line.rfind(b"\t", 1, LINE_LIMIT + 1))
            if cut <= 0 or not line[:cut].strip() or not line[cut:].strip():
                cut, line = LINE_LIMIT, line[:LINE_LIMIT] + b" " + line[LINE_LIMIT:]
            out.append(line[:cut])
            line = line[cut:]
        out.append(line)
    return b"\r\n".join(out)
