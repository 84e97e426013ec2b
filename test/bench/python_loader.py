#!/usr/bin/env python3
"""What a user writes without clover_export_fdw: Clover's example, made to load.

Follows Clover's own create_export.py (export-api-examples): request an
export, poll it every 0.25 s until it is no longer PENDING/IN_PROGRESS, then
download each file with requests and parse it with resp.json().  Where the
example only counts the elements, this one turns each into the columns of
clover_orders and streams them as CSV into `psql -c "COPY ... FROM STDIN"`.

Usage: python_loader.py API_BASE MERCHANT TOKEN START_MS END_MS TABLE
(psql connection from the libpq environment).  Prints the rows loaded.
"""

import csv
import json
import os
import subprocess
import sys
import time

import requests

API, MERCHANT, TOKEN, START, END, TABLE = sys.argv[1:7]
HEADERS = {"Authorization": "Bearer " + TOKEN}

# clover_orders' columns and where each comes from
PATHS = [("id",), ("currency",), ("employee", "id"), ("total",),
         ("unpaidBalance",), ("paymentState",), ("title",), ("note",),
         ("orderType", "id"), ("state",), ("payType",), ("taxRemoved",),
         ("isVat",), ("manualTransaction",), ("testMode",), ("device", "id"),
         ("createdTime",), ("clientCreatedTime",), ("modifiedTime",),
         ("lineItems",), ()]
TIMES = {16, 17, 18}


def api_url(path):
    return API + path


def create_export():
    resp = requests.post(api_url("/v3/merchants/%s/exports/" % MERCHANT),
                         json={"type": "ORDERS", "startTime": int(START),
                               "endTime": int(END)}, headers=HEADERS)
    resp.raise_for_status()
    return resp.json()


def wait_for_export(export_id):
    while True:
        resp = requests.get(api_url("/v3/merchants/%s/exports/%s" % (MERCHANT, export_id)),
                            headers=HEADERS)
        resp.raise_for_status()
        export = resp.json()
        if export["status"] not in ("PENDING", "IN_PROGRESS"):
            return export
        time.sleep(.25)


def value(obj, path, i):
    v = obj
    for key in path:
        if not isinstance(v, dict) or key not in v:
            return None
        v = v[key]
    if v is None:
        return None
    if i in TIMES:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(v // 1000)) + \
            ".%03d+00" % (v % 1000)
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, bool):
        return "t" if v else "f"
    return v


def main():
    export = wait_for_export(create_export()["id"])
    if export["status"] != "DONE":
        sys.exit("export ended %s" % export["status"])
    psql = subprocess.Popen(
        [os.path.join(os.environ.get("PGBIN", "/usr/bin"), "psql"), "-X", "-q",
         "-v", "ON_ERROR_STOP=1", "-c",
         "COPY %s FROM STDIN (FORMAT csv)" % TABLE],
        stdin=subprocess.PIPE, text=True, encoding="utf-8")
    out = csv.writer(psql.stdin)
    rows = 0
    for element in export["exportUrls"]["elements"]:
        resp = requests.get(element["url"])
        resp.raise_for_status()
        for obj in resp.json()["elements"]:
            out.writerow([value(obj, p, i) for i, p in enumerate(PATHS)])
            rows += 1
    psql.stdin.close()
    if psql.wait() != 0:
        sys.exit("psql failed")
    print(rows)


if __name__ == "__main__":
    main()
