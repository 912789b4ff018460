"""Debian's Postfix in throwaway instances on loopback, for tests that put CCM among real
mail servers: the organisation's server in front of it, a remote MX behind it.

Each instance has its own configuration, queue, log and mailboxes in a directory of its
own, listens on one loopback port, and runs its master in the foreground
(``postfix start-fg``) as a child of the test, which ends it. No system service is
touched. Mail for the instance's own domains is delivered to maildirs by Postfix's
``virtual`` agent; everything else is relayed to ``relayhost``.

Postfix's daemons drop to the ``postfix`` user and its delivery agent to ``nobody``,
so the directory is one of ``/tmp``'s, readable by them, not pytest's private one.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import os
import shutil
import subprocess
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

from servers import LOOPBACK, _ServerProcess, free_port

POSTFIX = Path("/usr/sbin/postfix")

#: the uid and gid of Debian's "nobody", which the virtual agent writes maildirs as
_NOBODY = 65534

_MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {directory}/queue
data_directory = {directory}/data
mail_owner = postfix
myhostname = {hostname}
myorigin = {hostname}
mydestination =
inet_interfaces = {LOOPBACK}
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
maillog_file_prefixes = {directory}
maillog_file = {directory}/maillog
alias_maps =
alias_database =
biff = no
smtp_dns_support_level = disabled
relayhost = {relayhost}
virtual_mailbox_domains = {domains}
virtual_mailbox_base = {directory}/mail
virtual_mailbox_maps = {mailboxes}
virtual_uid_maps = static:{nobody}
virtual_gid_maps = static:{nobody}
# a test is over in seconds: retry soon, give up soon
queue_run_delay = 1s
minimal_backoff_time = 1s
maximum_backoff_time = 2s
bounce_queue_lifetime = 0
"""

_MASTER_CF = """\
{LOOPBACK}:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       1       1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class Postfix(_ServerProcess):
    """One Postfix instance. ``domains`` maps each domain it delivers to the local parts
    it knows (others get ``550 5.1.1``); ``relayhost`` is where
    the rest goes (``[127.0.0.1]:2525``); ``settings`` are further ``main.cf`` lines.
    Each local part has a maildir of its own, read with :meth:`mailbox`."""

    def __init__(self, hostname: str, *, domains: dict[str, list[str]] | None = None,
                 relayhost: str = "", settings: dict[str, str] | None = None):
        self.hostname = hostname
        self.domains = domains or {}
        self.relayhost = relayhost
        self.settings = settings or {}
        self.directory = Path(tempfile.mkdtemp(prefix="ccm-postfix-"))
        self.port: int | None = None
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> Postfix:
        self.directory.chmod(0o755)
        (self.directory / "etc").mkdir()
        (self.directory / "queue").mkdir()
        (self.directory / "data").mkdir()
        shutil.chown(self.directory / "data", "postfix")
        (self.directory / "mail").mkdir(mode=0o777)
        (self.directory / "mail").chmod(0o777)
        self.port = free_port()
        (self.directory / "etc" / "main.cf").write_text(_MAIN_CF.format(
            directory=self.directory, hostname=self.hostname, LOOPBACK=LOOPBACK,
            relayhost=self.relayhost, domains=", ".join(self.domains),
            mailboxes=self._mailbox_map(), nobody=_NOBODY)
            + "".join(f"{name} = {value}\n" for name, value in self.settings.items()))
        (self.directory / "etc" / "master.cf").write_text(
            _MASTER_CF.format(LOOPBACK=LOOPBACK, port=self.port))
        # "check" creates the queue's directories, owned as the daemons need them
        subprocess.run([str(POSTFIX), "-c", str(self.directory / "etc"), "check"],
                       check=False, stdin=subprocess.DEVNULL, capture_output=True)
        self._process = subprocess.Popen(
            [str(POSTFIX), "-c", str(self.directory / "etc"), "start-fg"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_until_listening(self.directory / "maillog")
        return self

    def _mailbox_map(self) -> str:
        """Postfix's ``virtual_mailbox_maps``: a maildir per known address."""
        known = [f"{local}@{domain}={local}/" for domain, locals_ in self.domains.items()
                 for local in locals_]
        return "inline:{" + ", ".join(known) + "}"

    def __exit__(self, *exc) -> None:
        try:
            # ``postfix start-fg`` runs its master as a child of a shell: ending the
            # shell we started would leave the master running, an orphan. Stop the
            # master, and the shell ends once it has reaped it.
            subprocess.run([str(POSTFIX), "-c", str(self.directory / "etc"), "abort"],
                           check=False, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=30)
            if self._process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._process.wait(timeout=10)
            super().__exit__()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    @property
    def address(self) -> str:
        """This instance as a relay target, as CCM and Postfix write one."""
        return f"[{LOOPBACK}]:{self.port}"

    def mailbox(self, local_part: str) -> list[EmailMessage]:
        """The messages delivered to ``local_part``'s maildir so far, oldest first."""
        folder = self.directory / "mail" / local_part / "new"
        if not folder.is_dir():
            return []
        return [email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
                for path in sorted(folder.iterdir(), key=os.path.getmtime)]

    def wait_for(self, local_part: str, count: int = 1,
                 seconds: float = 30) -> list[EmailMessage]:
        """The maildir's messages once it holds ``count``; fails with the log if not."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            messages = self.mailbox(local_part)
            if len(messages) >= count:
                return messages
            time.sleep(0.05)
        raise AssertionError(f"{local_part} got {len(self.mailbox(local_part))} of {count} "
                             f"messages; {self.hostname}'s log:\n{self.log()}")

    def log(self) -> str:
        path = self.directory / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def flush(self) -> None:
        """Try the deferred queue again now (``postqueue -f``)."""
        subprocess.run(["postqueue", "-c", str(self.directory / "etc"), "-f"], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

