"""Exports: their life cycle, and the generation and cache of their files.

Life cycle (real elapsed time, so tests stay fast; the fake clock only
stamps createdTime/modifiedTime/availableUntil):

    PENDING      for queue_ms after the POST, percentComplete 0
    IN_PROGRESS  percentComplete = min(time share of the processing time,
                 share of the file generation done), at most 99
    DONE         once the processing time has passed AND the files are written:
                 percentComplete 100, availableUntil = fake now + 24 h,
                 exportUrls.elements = one pre-signed URL per file (an empty
                 list when the export holds no object)

A poll fault (kind export_status) can freeze an export in another status
("FAILED", ...) or keep it IN_PROGRESS forever; a generation error turns it
FAILED.  Both are not running any more, except the "stuck" IN_PROGRESS.

The processing time is processing_ms, plus objects / processing_objects_per_s
seconds when that rate is set (not 0): Clover takes longer for a larger
window.  Until the files are all generated, the object count in it is
estimated from the share generated so far.

Files: the content of an export is fully determined by a ContentSpec (seed,
merchant, volume, type, effective half-open time range, objects per file,
shuffle, anomalies).  A FileSet is generated for a spec once, in a
background thread, into the data directory, and reused by any later export
with the same spec (also across restarts with the same --data-dir: a
manifest marks a complete set).  Each file is {"elements":[...]} with at most
objects_per_file objects, in createdTime order unless shuffled.
"""

import collections
import hashlib
import json
import os
import random
import threading
import time

from .data import DAY_MS, Generator, stable_hash

GEN_VERSION = 1  # bump when data.py changes what it generates
RUNNING = ("PENDING", "IN_PROGRESS")

ContentSpec = collections.namedtuple(
    "ContentSpec",
    "seed merchant orders_per_day kind lo hi per_file shuffle anomalies")

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def apply_anomalies(obj, kind, names):
    """Data faults, applied to the first object of every file."""
    money = "total" if kind == "ORDERS" else "amount"
    for name in names:
        if name == "nul_in_note":
            obj["note"] = "before\u0000after"
        elif name == "huge_total":
            obj[money] = 123456789012345678901234567890
        elif name == "string_client_time":
            obj["clientCreatedTime"] = "yesterday"
        elif name == "float_total":
            obj[money] = 12.5
        elif name == "deep_nesting":
            nested = []
            for _ in range(199):
                nested = [nested]
            obj["note"] = nested       # 200 nested arrays


class FileSet:
    """The files of one ContentSpec, complete once `done` is set."""

    def __init__(self, spec, directory):
        self.spec = spec
        self.dir = directory
        self.files = []          # [(path, objects, bytes)], in URL order
        self.objects = 0
        self.buckets_total = Generator.bucket_count(spec.lo, spec.hi)
        self.buckets_done = 0
        self.generated = 0       # objects generated so far (files or not)
        self.error = None
        self.done = threading.Event()

    def progress(self):
        if self.done.is_set():
            return 1.0
        return min(0.99, self.buckets_done / max(1, self.buckets_total))


class FileCache:
    """Generates FileSets on demand and keeps them (in memory and on disk)."""

    def __init__(self, data_dir, generator):
        self.data_dir = data_dir
        self.gen = generator
        self._sets = {}
        self._lock = threading.Lock()

    def get(self, spec):
        """The FileSet of spec: cached, loaded from disk, or being generated."""
        with self._lock:
            fs = self._sets.get(spec)
            if fs is not None and fs.error is None:   # a failed set is made again
                return fs
            digest = hashlib.sha256(repr((GEN_VERSION,) + tuple(spec)).encode()).hexdigest()[:24]
            fs = self._sets[spec] = FileSet(spec, os.path.join(self.data_dir, digest))
        if not self._load(fs):
            threading.Thread(target=self._generate, args=(fs,), daemon=True,
                             name="generate-" + digest[:8]).start()
        return fs

    @staticmethod
    def _load(fs):
        try:
            with open(os.path.join(fs.dir, "manifest.json")) as f:
                manifest = json.load(f)
        except (OSError, ValueError):
            return False
        fs.files = [(os.path.join(fs.dir, name), n, size) for name, n, size in manifest["files"]]
        fs.objects = manifest["objects"]
        fs.buckets_done = fs.buckets_total
        fs.generated = fs.objects
        fs.done.set()
        return True

    def _generate(self, fs):
        spec = fs.spec
        try:
            os.makedirs(fs.dir, exist_ok=True)
            pending = []
            for objs in self.gen.window(spec.kind, spec.merchant, spec.orders_per_day,
                                        spec.lo, spec.hi):
                pending.extend(_encode(o).encode() for o in objs)
                fs.generated += len(objs)
                if not spec.shuffle:
                    while len(pending) >= spec.per_file:
                        self._write(fs, pending[:spec.per_file])
                        del pending[:spec.per_file]
                fs.buckets_done += 1
            if spec.shuffle:
                random.Random(stable_hash(*spec)).shuffle(pending)
            for i in range(0, len(pending), spec.per_file):
                self._write(fs, pending[i:i + spec.per_file])
            manifest = {"files": [[os.path.basename(p), n, size] for p, n, size in fs.files],
                        "objects": fs.objects}
            with open(os.path.join(fs.dir, "manifest.json.tmp"), "w") as f:
                json.dump(manifest, f)
            os.replace(os.path.join(fs.dir, "manifest.json.tmp"),
                       os.path.join(fs.dir, "manifest.json"))
        except Exception as e:  # surfaces as a FAILED export
            fs.error = "%s: %s" % (type(e).__name__, e)
        fs.done.set()

    @staticmethod
    def _write(fs, chunk):
        """Write one file from a list of serialized (UTF-8) objects.  Piece
        by piece: joining megabytes first costs more than the generation."""
        spec = fs.spec
        if spec.anomalies:
            first = json.loads(chunk[0])
            apply_anomalies(first, spec.kind, spec.anomalies)
            chunk[0] = _encode(first).encode()
        path = os.path.join(fs.dir, "%d.json" % (len(fs.files) + 1))
        with open(path + ".tmp", "wb", buffering=1 << 16) as f:
            f.write(b'{"elements":[')
            for i, obj in enumerate(chunk):
                if i:
                    f.write(b",")
                f.write(obj)
            f.write(b"]}")
            size = f.tell()
        os.replace(path + ".tmp", path)
        fs.files.append((path, len(chunk), size))
        fs.objects += len(chunk)


class Export:
    """One export job as Clover reports it."""

    def __init__(self, eid, merchant, kind, start, end, now_ms, fileset,
                 queue_ms, processing_ms, file_base, url_form="path", url_prefix="",
                 objects_per_s=0):
        self.id = eid
        self.merchant = merchant
        self.kind = kind
        self.start = start
        self.end = end
        self.created_ms = self.modified_ms = now_ms
        self.fileset = fileset
        self.queue_ms = queue_ms
        self.processing_ms = processing_ms
        self.objects_per_s = objects_per_s  # config processing_objects_per_s
        self.file_base = file_base   # "http://host:port" of the file host
        self.url_form = url_form     # "path" or "query" (config file_url_form)
        self.url_prefix = url_prefix  # config file_url_query_prefix
        self.status = "PENDING"
        self.percent = 0
        self.available_until = None
        self.frozen = False          # set by an export_status fault
        self.polls = 0
        self.downloads = 0
        self._t0 = time.monotonic()

    def refresh(self, now_ms):
        """Advance the life cycle to the present (real elapsed time)."""
        if self.frozen or self.status not in RUNNING:
            return
        elapsed = (time.monotonic() - self._t0) * 1000
        if elapsed < self.queue_ms:
            return
        fs = self.fileset
        status, percent = "IN_PROGRESS", self.percent
        if fs.error:
            status = "FAILED"
        else:
            needed = self.processing_time_ms()
            share = (elapsed - self.queue_ms) / needed if needed else 1.0
            if share >= 1 and fs.done.is_set():
                status, percent = "DONE", 100
                self.available_until = now_ms + DAY_MS
            else:
                percent = max(percent, min(99, int(100 * min(share, fs.progress()))))
        if (status, percent) != (self.status, self.percent):
            self.status, self.percent, self.modified_ms = status, percent, now_ms

    def processing_time_ms(self):
        """How long the export stays IN_PROGRESS at least: processing_ms,
        plus its objects at objects_per_s (estimated while generating)."""
        if not self.objects_per_s:
            return self.processing_ms
        fs = self.fileset
        objects = fs.generated
        if not fs.done.is_set():
            done = fs.buckets_done / max(1, fs.buckets_total)
            objects = objects / done if done else 0
        return self.processing_ms + 1000.0 * objects / self.objects_per_s

    def force(self, rule, now_ms):
        """Apply an export_status fault: freeze in rule's status, or stuck."""
        self.refresh(now_ms)
        self.status = "IN_PROGRESS" if rule.get("stuck") else rule["status"]
        self.frozen = True
        self.modified_ms = now_ms

    def running(self, now_ms):
        self.refresh(now_ms)
        return self.status in RUNNING

    def file_path(self, n):
        """Path of the export's file number n (1-based), if it has one."""
        if self.status == "DONE" and 1 <= n <= len(self.fileset.files):
            return self.fileset.files[n - 1][0]
        return None

    def to_json(self, sign):
        """The export object, in the shape of Clover's documents.  sign(path,
        expires) gives the Signature of a file URL."""
        obj = {"id": self.id, "type": self.kind, "status": self.status,
               "percentComplete": self.percent}
        if self.status == "DONE":
            obj["availableUntil"] = self.available_until
        obj.update(startTime=self.start, endTime=self.end, createdTime=self.created_ms,
                   modifiedTime=self.modified_ms)
        if self.status == "DONE":
            urls = []
            for n in range(1, len(self.fileset.files) + 1):
                path = "/exports/%s/%d.json" % (self.id, n)
                query = "%sExpires=%d&Signature=%s" % (
                    self.url_prefix, self.available_until, sign(path, self.available_until))
                if self.url_form == "query":    # no path: the key is a parameter
                    url = "%s?key=%s&%s" % (self.file_base, path, query)
                else:
                    url = "%s%s?%s" % (self.file_base, path, query)
                urls.append({"url": url, "export": {"id": self.id}})
            obj["exportUrls"] = {"elements": urls}
        obj["merchantRef"] = {"id": self.merchant}
        return obj

    def summary(self):
        """The export as /_admin/stats lists it."""
        done = self.status == "DONE"
        return {"id": self.id, "type": self.kind, "merchant": self.merchant,
                "startTime": self.start, "endTime": self.end, "status": self.status,
                "polls": self.polls, "files": len(self.fileset.files) if done else 0,
                "objects": self.fileset.objects if done else None,
                "downloads": self.downloads}
