"""Hypothesis profiles for the pure domain tests.

Profiles are registered here and *applied per test* (``settings.get_profile``
as a decorator), never loaded globally, so they do not change other test
packages' Hypothesis settings. Choose one with ``SLADESK_HYPOTHESIS_PROFILE``:

* ``default`` — about 1,000 examples per main property; the calendar modules
  finish in well under a minute on a 2-core machine;
* ``thorough`` — 20,000 examples per property (minutes to run; nightly / by hand);
* ``quick`` — 100 examples, for a fast edit-test loop.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    "print_blob": True,
}

settings.register_profile("sladesk-domain-default", max_examples=1_000, **_COMMON)
settings.register_profile("sladesk-domain-thorough", max_examples=20_000, **_COMMON)
settings.register_profile("sladesk-domain-quick", max_examples=100, **_COMMON)

PROFILE_NAME = "sladesk-domain-" + os.environ.get("SLADESK_HYPOTHESIS_PROFILE", "default")
