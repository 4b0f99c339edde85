"""The exit hook of the shared tier (not public API).

``set`` returns once L1 holds the value; its L2 write, and the bus message telling other
instances to drop their copies, are sent in the background. A batch job that sets keys and ends
would leave those still queued unsent, so at interpreter exit every cache's shared tier still
open sends what it queued and closes, as ``Cache.close()`` does, within a short timeout.
"""

from __future__ import annotations

import atexit

from ._healcache import _close_all_shared

# How long the exit waits at most is the core's (2 s): a healthy Redis takes milliseconds for
# thousands of writes, and an unreachable one has its writes skipped, so none are under way.
atexit.register(_close_all_shared)
