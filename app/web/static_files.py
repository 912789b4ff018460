"""The portal's own static files (CSS, JavaScript, images): fingerprinted, cached for a
year, compressed.

``url_for("static", filename=...)`` adds ``?v=`` and the first 12 hex digits of the
file's SHA-256, so a changed file has a new URL. Asked for with the current
fingerprint, a file may be kept for a year by any cache (``immutable``: not even
revalidated on reload). Asked for without one, or with a stale one (a page from before
a deploy, or another version's during a rolling one), it is served all the same but
``no-cache``: a cache may keep it only to ask again, and its ETag makes that a 304.
Text (CSS, JavaScript, SVG) goes gzip-compressed to a client that accepts it,
compressed once per version of the file and kept in memory (the files are ~70 kB).

Only a file's own name is served: the folder's manifest (every regular file under it, by
its path as stored) is what exists, so ``js/./x.js``, ``css/../js/x.js`` or ``x.css/.``
are 404s rather than new keys in the cache: each spelling would otherwise read, compress
and keep the file again, and memory would grow with every request. The manifest is read
again only when a folder in it changes (a file added or removed).

WhiteNoise would serve these outside Flask, as WSGI middleware: the portal's security
headers (the CSP that an SVG needs, ``nosniff``) and metrics would not apply, and its
fingerprints come from Django's manifest storage, not a Flask ``url_for``; the few
lines here keep one path for every response.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
import os
import threading
from dataclasses import dataclass

from flask import Flask, Response, abort, request
from flask.sessions import SecureCookieSessionInterface

#: what a fingerprinted URL may be cached for
CACHE_FINGERPRINTED = "public, max-age=31536000, immutable"
#: an unversioned or stale URL: kept only to revalidate (cheap: ETag, 304)
CACHE_UNVERSIONED = "no-cache"
#: media types worth compressing (images other than SVG already are)
COMPRESSIBLE = frozenset({"text/css", "text/javascript", "application/javascript",
                          "image/svg+xml", "application/json", "text/plain"})
#: hex digits of the SHA-256 in a URL
FINGERPRINT_LENGTH = 12


@dataclass(frozen=True)
class _Version:
    """One version of a file: what it was when read (to know when it changes) and its
    bytes, plain and compressed."""

    stamp: tuple[int, int]  # (mtime_ns, size)
    fingerprint: str
    data: bytes
    compressed: bytes | None  # None when not compressible or no smaller


class StaticFiles:
    """The files under one folder, each read once per version."""

    def __init__(self, folder: str):
        self.folder = folder
        self._versions: dict[str, _Version] = {}
        self._names: frozenset[str] | None = None  # the manifest, read at first use
        self._folders: dict[str, int] = {}  # each folder scanned: its mtime_ns then
        self._lock = threading.Lock()

    def version(self, filename: str) -> _Version | None:
        """The file's current version; None when the folder has no file of that very
        name (another spelling of one, such as ``a/../b.css``, is not one)."""
        if not self._listed(filename):
            return None
        path = os.path.join(self.folder, *filename.split("/"))
        try:
            status = os.stat(path)
        except OSError:  # gone since the folder was scanned: so is its copy
            with self._lock:
                self._versions.pop(filename, None)
            return None
        stamp = (status.st_mtime_ns, status.st_size)
        known = self._versions.get(filename)
        if known is not None and known.stamp == stamp:
            return known
        with open(path, "rb") as handle:
            data = handle.read()
        fresh = _Version(stamp, hashlib.sha256(data).hexdigest()[:FINGERPRINT_LENGTH], data,
                         _compressed(data) if _media_type(filename) in COMPRESSIBLE else None)
        with self._lock:
            self._versions[filename] = fresh
        return fresh

    def fingerprint(self, filename: str) -> str | None:
        version = self.version(filename)
        return version.fingerprint if version else None

    def _listed(self, filename: str) -> bool:
        """Whether ``filename`` is in the manifest. A name not in it has the folders
        looked at again (a few ``stat`` calls, not a walk), and the folder scanned again
        only when one of them changed: a file added or removed."""
        names = self._names
        if names is not None and filename in names:
            return True
        if names is None or any(_mtime(folder) != seen
                                for folder, seen in self._folders.items()):
            with self._lock:
                names, self._folders = _scan(self.folder)
                self._names = names
                # versions of files no longer there go too, so memory follows the folder
                self._versions = {name: version for name, version in self._versions.items()
                                  if name in names}
        return filename in names


def _scan(root: str) -> tuple[frozenset[str], dict[str, int]]:
    """Every regular file under ``root`` as a ``/``-separated relative path, and each
    folder's mtime. Hidden names (``.git``, ``.DS_Store``) are left out; symbolic links
    to folders are not followed (a loop would make endless names)."""
    names: set[str] = set()
    folders = {root: _mtime(root)}  # even when missing: made later, it is seen
    for folder, subfolders, files in os.walk(root):
        folders[folder] = _mtime(folder)
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        relative = os.path.relpath(folder, root)
        prefix = "" if relative == "." else relative.replace(os.sep, "/") + "/"
        names.update(prefix + name for name in files if not name.startswith(".")
                     and os.path.isfile(os.path.join(folder, name)))
    return frozenset(names), folders


def _mtime(folder: str) -> int:
    try:
        return os.stat(folder).st_mtime_ns
    except OSError:
        return -1


def _compressed(data: bytes) -> bytes | None:
    # mtime=0: the same bytes on every machine and start, so one ETag fits all of them
    packed = gzip.compress(data, compresslevel=9, mtime=0)
    return packed if len(packed) < len(data) else None


def _media_type(filename: str) -> str:
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


class _NoSessionForStatic(SecureCookieSessionInterface):
    """Flask's cookie session, except that a static file goes out without it: no
    ``Set-Cookie`` and no ``Vary: Cookie`` (which Flask adds whenever anything, such as
    Flask-Login's hook, looked at the session), so one cached copy fits every visitor.
    A static URL's error page keeps the session (its form needs the CSRF token)."""

    def save_session(self, app: Flask, session, response: Response) -> None:
        if request.endpoint == "static" and response.status_code in (200, 206, 304):
            return
        super().save_session(app, session, response)


def register(app: Flask) -> None:
    """Serve ``app``'s static folder this way, and fingerprint its ``url_for``."""
    files = app.extensions["ccm_static_files"] = StaticFiles(app.static_folder)
    app.session_interface = _NoSessionForStatic()

    @app.url_defaults
    def fingerprinted(endpoint: str, values: dict) -> None:
        if endpoint == "static" and "v" not in values and "filename" in values:
            fingerprint = files.fingerprint(values["filename"])
            if fingerprint:
                values["v"] = fingerprint

    def static(filename: str) -> Response:
        """One static file (the ``static`` endpoint Flask made, with its URL rule)."""
        version = files.version(filename)
        if version is None:
            abort(404)
        current = request.args.get("v") == version.fingerprint
        packed = version.compressed is not None and _accepts_gzip()
        response = Response(version.compressed if packed else version.data,
                             mimetype=_media_type(filename))
        if packed:
            response.headers["Content-Encoding"] = "gzip"
        if version.compressed is not None:
            response.vary.add("Accept-Encoding")
        response.set_etag(version.fingerprint + ("-gzip" if packed else ""))
        response.headers["Cache-Control"] = CACHE_FINGERPRINTED if current \
            else CACHE_UNVERSIONED
        return response.make_conditional(request, accept_ranges=not packed,
                                         complete_length=None if packed else len(version.data))

    app.view_functions["static"] = static


def _accepts_gzip() -> bool:
    """Whether the client takes gzip (``Accept-Encoding: gzip``, not with ``q=0``)."""
    return request.accept_encodings["gzip"] > 0 or (
        "gzip" not in request.accept_encodings and request.accept_encodings["*"] > 0)
