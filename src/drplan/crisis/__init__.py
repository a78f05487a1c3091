"""The crisis cell's journal: append-only, hash-chained, bound to the plan.

- :mod:`drplan.crisis.journal`: entries, the hash chain and its verification;
- :mod:`drplan.crisis.store`: where the lines live (:class:`JournalStore`, local file);
- :mod:`drplan.crisis.activation`: the plan's activation criteria against observations;
- :mod:`drplan.crisis.cell`: open, log, decide, status, close (``drplan crisis``);
- :mod:`drplan.crisis.export`: Markdown for the post-crisis review.
"""

from drplan.crisis.journal import Journal, Verification
from drplan.crisis.store import JournalStore, LocalFileStore

__all__ = ["Journal", "JournalStore", "LocalFileStore", "Verification"]
