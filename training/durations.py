"""Ages and windows given on the command line: a whole number of hours, days or weeks."""

from __future__ import annotations

import re
from datetime import timedelta

from training.errors import LeadscoreError

_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str, option: str) -> timedelta:
    """`180d`, `12w` or `36h` as a positive duration; anything else is a one-line error naming the option."""
    match = re.fullmatch(r"\s*(\d+)\s*([hdw])\s*", text.lower())
    if not match or int(match.group(1)) == 0:
        raise LeadscoreError(
            f"{option} {text!r} is not a duration: give a whole number of hours, days or weeks, like 180d, 12w or 36h"
        )
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
