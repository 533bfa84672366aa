"""The store under test: a replicated log (Raft) in front of an SQLite state machine.

Modules, in the order data flows through them:

``api``           HTTP (docs/contracts.md §2): clients, peers (``/raft/*``) and admin on one server
``raft``          election, replication, commitment, check-quorum, ReadIndex
``wal``           the log file (checksummed records, group-committed fsyncs, compaction)
``store``         wires log, Raft, state and snapshots; the applier; recovery (``open_state``)
``statemachine``  applies committed entries to SQLite exactly once; digests; reader connections
``schema``        the registry of tables and ops (the key-value domain registers here)
``codecs``        snapshot codecs (``dump``; others register into ``CODECS``)
``snapshots``     snapshot files: header, checksum, atomic write
``bugs``          the deliberate bug modes, documented in one place
``node``/``tools`` the node process and the offline digest tool

Adding a domain (the scheduler): register tables with ``schema.table`` and
apply functions with ``@schema.op("domain.verb")`` in a module that the node
imports, validate requests in its HTTP routes, and submit commands with
``Store.submit({"op": "domain.verb", ...})``. Adding a codec: an object with
``name``, ``encode(conn) -> bytes`` and ``restore(data, db_path)``, put into
``codecs.CODECS``; the snapshot header records which codec wrote a file.
"""
