"""Yjs documents: persistence (update log and snapshots), compaction, history, limits."""
