#!/usr/bin/env python3
"""fake_clover: a faithful fake of Clover's Merchant Data Export API.

Written from Clover's documents (the export API README and examples, the
/v1 pagination page; see FAKE.md), for testing clover_export_fdw.  Standard
library only.  Two HTTP/1.1 servers on 127.0.0.1: the API host and a file
host that plays the separate host of the pre-signed file URLs.

Rules reproduced (each lives in one place, named in brackets):

Auth [server.Fake.authorize]
  Only "Authorization: Bearer <token>".  A missing or unknown token -> 401;
  an access_token query parameter -> 401 even beside a good header (Clover
  refuses it since 2022); a known token without permission for the
  merchant -> 401 (Clover's 401 means either); a merchant not on this
  region's host -> 404.  401 body: {"message":"401 Unauthorized"}.

Create [server.Fake.create_export]
  POST /v3/merchants/{mId}/exports[/] {"type", "startTime", "endTime"};
  times as JSON numbers or numeric strings.  Bad body -> 400; a window over
  30 days -> 400 "The max time range for an export is 30 days"; outside the
  service hours (fake clock) -> 503 naming the hours; too many running
  exports -> 503 "Too many concurrent exports...".  Else 200, PENDING.

Poll [exports.Export]
  GET /v3/merchants/{mId}/exports/{id}[/]: PENDING (queue_ms), IN_PROGRESS
  (percentComplete rising with real time and file generation), DONE with
  availableUntil (fake now + 24 h) and exportUrls.  Unknown id or another
  merchant's export -> 404.

Files [server.Fake.get_file, exports.FileCache]
  Pre-signed URLs on the file host: bad signature -> 403, after
  availableUntil -> expired_status (404), {"elements": [...]} with at most
  1000 objects each, createdTime order.  Which objects: startTime <= t <
  endTime, or <= endTime when end_inclusive (default), minus the last lag_ms.

Service hours [clock]
  us/la every day 10:00-15:00 UTC, eu MON-FRI 01:00-05:00, SAT 02:00-05:00,
  SUN 02:00-06:00, sandbox always; config "hours" overrides.

Data [data]
  Deterministic per (seed, merchant, type, UTC hour); one order and one
  payment exactly at every UTC midnight.

/v1 lists [v1], fault injection [faults], admin API [server.ApiHandler],
configuration [config]: see those modules and FAKE.md.

Usage:
  fake_clover.py --ready-file PATH [--host 127.0.0.1] [--api-port 0]
                 [--file-port 0] [--seed 42] [--data-dir DIR]
                 [--region sandbox] [--config JSON]
                 [--tls-cert FILE --tls-key FILE]
With --tls-cert/--tls-key (PEM) both hosts speak HTTPS only (TLS 1.2+) and
file_url_scheme defaults to "https".
When both servers listen, PATH gets {"api_port", "file_port", "pid",
"scheme"} (written atomically).  SIGTERM/SIGINT stop it cleanly.  One log line per
request on stderr: host, method, path (never the query), status.
"""

import argparse
import json
import os
import shutil
import signal
import ssl
import sys
import tempfile
import threading

sys.dont_write_bytecode = True   # keep the test directory clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fakeclover import config as configmod  # noqa: E402
from fakeclover.server import Fake, start  # noqa: E402


def parse_args(argv):
    p = argparse.ArgumentParser(description="Fake Clover Merchant Data Export API")
    p.add_argument("--ready-file", required=True,
                   help="written with the ports once both servers listen")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--api-port", type=int, default=0, help="0 = any free port")
    p.add_argument("--file-port", type=int, default=0, help="0 = any free port")
    p.add_argument("--seed", type=int, default=42, help="data seed (default 42)")
    p.add_argument("--data-dir", help="where export files go (default: a temporary "
                   "directory removed on exit)")
    p.add_argument("--region", choices=("us", "eu", "la", "sandbox"),
                   help="the region this host plays (default sandbox)")
    p.add_argument("--config", default="{}",
                   help="JSON object of config keys, the baseline that /_admin/reset restores")
    p.add_argument("--tls-cert", metavar="FILE",
                   help="PEM certificate (chain): both hosts speak HTTPS; needs --tls-key")
    p.add_argument("--tls-key", metavar="FILE", help="PEM private key of --tls-cert")
    args = p.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        p.error("--tls-cert and --tls-key go together")
    return args


def tls_context(cert, key):
    """Server-side TLS 1.2+ context with that certificate, or exit."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as e:
        sys.exit("fake_clover: cannot load --tls-cert %s / --tls-key %s: %s" % (cert, key, e))
    return ctx


def main(argv=None):
    args = parse_args(argv)
    ctx = tls_context(args.tls_cert, args.tls_key) if args.tls_cert else None
    try:
        patch = json.loads(args.config)
        if args.region:
            patch = dict(patch, region=args.region)
        defaults = configmod.DEFAULTS
        if ctx:
            defaults = configmod.merge(defaults, {"file_url_scheme": "https"})
        baseline = configmod.merge(defaults, patch)
    except ValueError as e:
        sys.exit("fake_clover: bad --config: %s" % e)

    own_dir = args.data_dir is None
    data_dir = tempfile.mkdtemp(prefix="fake_clover.") if own_dir else args.data_dir
    os.makedirs(data_dir, exist_ok=True)

    fake = Fake(args.seed, data_dir, baseline)
    api, files = start(fake, args.host, args.api_port, args.file_port, ctx)

    ready = {"api_port": api.server_address[1], "file_port": files.server_address[1],
             "pid": os.getpid(), "scheme": "https" if ctx else "http"}
    tmp = "%s.%d.tmp" % (args.ready_file, os.getpid())
    with open(tmp, "w") as f:
        json.dump(ready, f)
    os.replace(tmp, args.ready_file)
    sys.stderr.write("fake_clover: %s, api port %d, file port %d, pid %d, data dir %s\n"
                     % (ready["scheme"], ready["api_port"], ready["file_port"], ready["pid"],
                        data_dir))

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass

    fake.stopping.set()   # wakes stalled and delayed answers
    for srv in (api, files):
        srv.shutdown()
        srv.server_close()
    if own_dir:
        shutil.rmtree(data_dir, ignore_errors=True)
    try:
        os.unlink(args.ready_file)
    except OSError:
        pass
    sys.stderr.write("fake_clover: stopped\n")


if __name__ == "__main__":
    main()
