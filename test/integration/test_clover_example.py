"""Clover's own example client against the bundled fake.

A client nobody here wrote is the best check that the fake speaks Clover.
Clover's python/create_export.py (test/compat/create_export.py, kept exactly
as Clover publishes it in its export-api-examples repository, summarized in
../shared/seeds/001_*) runs with two changes only, made here: its
configuration variables, and the Authorization: Bearer header that Clover
later adopted instead of the access_token query parameter (which the API
refuses since 2022).  It must run to the end against the fake, and the
objects it reports must be what the fake holds for its window.
"""

import os
import re
import subprocess
import sys
import tempfile

from common import API, MERCHANT, Tap, fake_reset, fake_stats, _admin

EXAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                       "compat", "create_export.py")
START_MS = 1711929600000      # 2024-04-01 00:00 UTC
END_MS = 1714435200000        # 2024-04-30 00:00 UTC
TOKEN = "test-token"


def adapt(script):
    """Set the configuration variables and send the token as a header."""
    config = {
        "HOST": repr(API),
        "MERCHANT_ID": repr(MERCHANT),
        "ACCESS_TOKEN": repr(TOKEN) + '\nAUTH = {"Authorization": "Bearer " + ACCESS_TOKEN}',
        "START_TIME": '"%d"' % START_MS,
        "END_TIME": '"%d"' % END_MS,
    }
    for name, value in config.items():
        script, n = re.subn(r"^%s\s*=.*$" % name, "%s = %s" % (name, value),
                            script, count=1, flags=re.M)
        if n != 1:
            raise ValueError("the example has no %s to set" % name)
    changes = [
        ('return "{}{}?access_token={}".format(HOST, resource_path, ACCESS_TOKEN)',
         'return "{}{}".format(HOST, resource_path)'),
        ('requests.post(url, json=payload)', 'requests.post(url, json=payload, headers=AUTH)'),
        ('resp = requests.get(url)', 'resp = requests.get(url, headers=AUTH)'),
    ]
    for old, new in changes:
        if script.count(old) != 1:
            raise ValueError("the example no longer contains %r once" % old)
        script = script.replace(old, new)
    return script


def main():
    tap = Tap()
    with open(EXAMPLE, encoding="utf-8") as f:
        script = adapt(f.read())
    fake_reset()
    with tempfile.TemporaryDirectory() as tmp:
        target = os.path.join(tmp, "create_export.py")
        with open(target, "w") as f:
            f.write(script)
        run = subprocess.run([sys.executable, target], capture_output=True,
                             text=True, timeout=300)
    out = run.stdout
    tap.check(run.returncode == 0, "the example runs to the end",
              "exit %d: %s" % (run.returncode, run.stderr[-500:]))
    tap.check("status: PENDING" in out and "Export is DONE" in out,
              "it sees the export PENDING, then DONE", out[:300])
    counts = [int(c) for c in re.findall(r"^Downloaded: (\d+)$", out, re.M)]
    # Clover's endTime is inclusive in the fake by default: an order sits
    # at every UTC midnight, END_MS included
    want = _admin("/expect?type=ORDERS&merchant=%s&start=%d&end=%d"
                  % (MERCHANT, START_MS, END_MS + 1))
    tap.check(counts and all(c <= 1000 for c in counts),
              "files of at most 1000 objects (%s)" % counts)
    tap.check(sum(counts) == want["count"],
              "the objects it downloaded are the fake's (%d)" % want["count"],
              "downloaded %d" % sum(counts))
    stats = fake_stats()
    tap.check(stats["auth_failures"] == 0 and stats["token_on_file_host"] == 0,
              "no request was refused and no token reached the file host",
              str(stats))
    tap.finish()


if __name__ == "__main__":
    main()
