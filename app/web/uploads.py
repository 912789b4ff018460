"""Files a browser sent, as attachments for the gateway."""

import re

from werkzeug.datastructures import FileStorage

from app.domain.composing import Upload
from app.mail import filenames


def from_files(files: list[FileStorage] | None) -> list[Upload]:
    """The files chosen in a form's file field (empty file inputs are skipped), each
    under the name its person gave it, made safe (app/mail/filenames.py)."""
    uploads = []
    for file in files or []:
        if not file or not file.filename:
            continue
        uploads.append(Upload(
            filename=filenames.safe(file.filename) or "attachment",
            content_type=media_type(file.mimetype), data=file.read()))
    return uploads


#: a media type as RFC 6838 writes one: type/subtype of restricted name characters
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}",
                         re.ASCII)


def media_type(declared: str | None) -> str:
    """The browser's word for a file's type when it is a plain media type, else
    ``application/octet-stream``: it goes into the attachment's header as it is."""
    declared = (declared or "").lower()
    return declared if _MEDIA_TYPE.fullmatch(declared) else "application/octet-stream"
