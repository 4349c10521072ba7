"""The tamper-evident audit trail: a hash chain anchored by a key kept outside the database.

Submodules are imported explicitly: `walk` (checking a run of the chain) must stay importable
without SQLAlchemy, because verification runs it in a lean helper process.
"""
