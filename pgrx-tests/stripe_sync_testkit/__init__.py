"""What the end-to-end tests (pgrx-tests/), the benchmarks (bench/) and the demo (scripts/demo.py)
share: real processes to run stripe_sync against, and stand-ins for the services it talks to.

- ``harness``: private PostgreSQL clusters preloading stripe_sync, signed webhook payloads and
  the streams of shared/bench/gen_events.py, waiting helpers; it also gives ``services``' names.
- ``services``: localstripe (started from ``localstripe_plus``), examples/webhook_relay.py and
  the official ``stripe`` client pointed at them.
- ``standin``: the Stripe stand-in of the tests and the benchmarks, an in-memory Stripe API that
  lists like Stripe does; with ``standin_pages``, read-only collections whose pages are built
  once as bytes, for loads of tens of thousands of objects.
- ``faultproxy``: an HTTP proxy that injects faults between the extension and a stand-in.
- ``slackstub``: a Slack incoming webhook for the alert tests.

Installed into the project's virtualenv by scripts/setup.sh (``pip install -e pgrx-tests``), in
editable mode: the modules find the repository (examples/, docs/) and the shared data beside it
from where they are.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
# shared/ (gen_events.py, Stripe's OpenAPI fixtures and resources) lies beside the repository.
SHARED = Path(os.environ.get("STRIPE_SYNC_SHARED") or REPO_ROOT.parent / "shared")
