"""Files a browser sent, as attachments for the gateway."""

from werkzeug.datastructures import FileStorage
from werkzeug.utils import secure_filename

from app.domain.composing import Upload


def from_files(files: list[FileStorage] | None) -> list[Upload]:
    """The files chosen in a form's file field (empty file inputs are skipped)."""
    uploads = []
    for file in files or []:
        if not file or not file.filename:
            continue
        uploads.append(Upload(
            filename=secure_filename(file.filename) or "attachment",
            content_type=file.mimetype or "application/octet-stream", data=file.read()))
    return uploads
