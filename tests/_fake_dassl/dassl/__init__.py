"""A FAKE, minimal Dassl for the tests of `ammpl.integrations.dassl` (never installed).

Written from Dassl's contract (DASSL_API.md), not from Dassl's code: it reproduces the API
surface the integration and our trainers touch (registry, config defaults, TrainerX with
Dassl's constructor order, loop, checkpoint files and loaders), and nothing more. The tests
put `tests/_fake_dassl` on sys.path only while they run.
"""

__version__ = "0.6.3+fake"
