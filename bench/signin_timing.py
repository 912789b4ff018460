"""How long a refused sign-in takes, by how many accounts the address has.

A wrong password at the generic ``/sign-in`` for an address with no account, with one,
and with accounts at three tenants: if the medians differ, a stranger can tell which
addresses have accounts and at how many organisations (an enumeration by timing). The
real ``ccm web`` serves, with the production password hashing (argon2id, the defaults
of app/config.py); accounts come from ``ccm config import``, as an operator makes them.
The kinds of address are tried in turn, round after round, so that whatever else the
machine does falls on all of them alike; the lock-out is lifted between rounds (through
the database, outside the timed request) so every attempt takes the path a first
wrong password takes. Each request comes from a loopback address of its own among
127.0.0.2-254, because the sign-in throttle (10 a minute per client) would otherwise
answer before any password is tested.

    .venv/bin/python bench/signin_timing.py                 # 40 rounds
    .venv/bin/python bench/signin_timing.py --rounds 100 --postgres
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

from harness import _CSRF, Browser, Instance, banner, machine, percentile

PASSWORD = "correct horse battery staple"
KINDS = {
    "unknown": "nobody@partner.test",
    "one account": "pat@partner.test",
    "three accounts": "sam@partner.test",
}
CONFIG = """\
tenants:
%s
"""
TENANT = """\
  - slug: %(slug)s
    name: %(slug)s
    domains: [%(slug)s.test]
    users:
      - {email: admin@%(slug)s.test, role: admin, password: "%(password)s"}
%(extra)s"""


def config() -> str:
    user = '      - {email: %s, role: external, password: "%s"}\n'
    tenants = []
    for slug in ("acme", "globex", "initech"):
        extra = user % ("sam@partner.test", PASSWORD)
        if slug == "acme":
            extra += user % ("pat@partner.test", PASSWORD)
        tenants.append(TENANT % {"slug": slug, "password": PASSWORD, "extra": extra})
    return CONFIG % "".join(tenants)


def attempt(browser: Browser, token: str, email: str) -> float:
    """One refused sign-in; its time in milliseconds."""
    started = time.perf_counter()
    status, _, page = browser.request("POST", "/sign-in?any=1", {
        "csrf_token": token, "email": email, "password": "not the password at all"})
    elapsed = (time.perf_counter() - started) * 1000
    if status != 200 or b"do not match an account" not in page:
        raise RuntimeError(f"unexpected answer for {email}: {status}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()

    with Instance("signin", postgres=args.postgres) as instance:
        instance.import_config(config())
        instance.web()
        sources = itertools.cycle(f"127.0.0.{n}" for n in range(2, 255))
        browser = Browser(instance.http_port)
        _, _, form = browser.get("/sign-in?any=1")
        token = _CSRF.search(form.decode()).group(1)
        times: dict[str, list[float]] = {kind: [] for kind in KINDS}
        for _ in range(args.rounds):
            for kind, email in KINDS.items():
                browser.source = next(sources)
                times[kind].append(attempt(browser, token, email))
            instance.sql("UPDATE users SET failed_signins = 0, locked_until = NULL")

        banner(f"refused sign-in at /sign-in, {instance.database}, {args.rounds} rounds, "
               f"{machine()}")
        baseline = statistics.median(times["unknown"])
        print(f"{'address':<16} {'median ms':>10} {'p90 ms':>8} {'vs unknown':>11}")
        for kind, values in times.items():
            median = statistics.median(values)
            print(f"{kind:<16} {median:>10.1f} {percentile(values, 90):>8.1f} "
                  f"{median / baseline:>10.2f}x")


if __name__ == "__main__":
    main()
