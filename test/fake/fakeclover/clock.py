"""The fake clock and the export service hours.

The fake clock is what Clover's servers believe "now" is.  It governs the
service hours, availableUntil and file expiry, the data that exists (nothing
is created after now) and the lag; it never governs the processing delays,
which run on real elapsed time so that tests stay fast.

Config: ``clock_ms`` freezes the clock at that epoch ms (null = running);
``clock_offset_ms`` is added to the real time while it runs.

Service hours are a string such as ``"MON-FRI 01:00-05:00, SAT 02:00-05:00"``
(UTC; a day range may wrap, e.g. ``FRI-MON``; an end of 24:00 means
midnight) or ``"always"``.  The same string is quoted in the 503 answer, as
Clover's "503 with available hours".
"""

import re
import time

DAYS = ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"]

# Clover's published hours per region (the README's current version)
REGION_HOURS = {
    "us": "MON-SUN 10:00-15:00",
    "la": "MON-SUN 10:00-15:00",
    "eu": "MON-FRI 01:00-05:00, SAT 02:00-05:00, SUN 02:00-06:00",
    "sandbox": "always",
}

_RULE = re.compile(r"^(MON|TUE|WED|THU|FRI|SAT|SUN)(?:-(MON|TUE|WED|THU|FRI|SAT|SUN))?"
                   r"\s+(\d\d):(\d\d)-(\d\d):(\d\d)$")


def now_ms(config):
    """The fake clock, in epoch milliseconds."""
    if config.get("clock_ms") is not None:
        return int(config["clock_ms"])
    return int(time.time() * 1000) + int(config.get("clock_offset_ms") or 0)


def parse_hours(text):
    """Parse an hours string into a list of (weekday set, start minute, end
    minute) rules, or None for "always".  Raises ValueError when malformed."""
    text = text.strip()
    if text.lower() == "always":
        return None
    rules = []
    for part in text.split(","):
        m = _RULE.match(part.strip().upper())
        if not m:
            raise ValueError("bad service hours %r (want e.g. 'MON-FRI 10:00-15:00' or "
                             "'always')" % part.strip())
        first = DAYS.index(m.group(1))
        last = DAYS.index(m.group(2) or m.group(1))
        days = {(first + i) % 7 for i in range((last - first) % 7 + 1)}
        start = int(m.group(3)) * 60 + int(m.group(4))
        end = int(m.group(5)) * 60 + int(m.group(6))
        if not (start < end <= 24 * 60) or int(m.group(4)) > 59 or int(m.group(6)) > 59:
            raise ValueError("bad time range in service hours %r" % part.strip())
        rules.append((days, start, end))
    return rules


def effective_hours(config):
    """The hours string in force: config "hours", else the region's."""
    return config.get("hours") or REGION_HOURS[config["region"]]


def is_open(config, at_ms):
    """Whether the export service accepts new exports at the given time."""
    rules = parse_hours(effective_hours(config))
    if rules is None:
        return True
    day = (at_ms // 86_400_000 + 3) % 7          # 1970-01-01 was a Thursday
    minute = (at_ms % 86_400_000) // 60_000
    return any(day in days and start <= minute < end for days, start, end in rules)
