"""The event log's IO: the store, its tail, waker, migrations, ids, locks and SQL."""
