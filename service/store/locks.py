"""PostgreSQL advisory-lock keys (first key of the two-key form): who waits for whom.

SQLite needs none: it has one writer at a time.
"""

SCHEMA_LOCK = (0x1EAD, 0)  # schema creation
SCORE_LOG_LOCK = (0x1EAD, 1)  # score writes and index chunks: ids become visible in order
OUTCOME_LOCK_NAMESPACE = 0x1EAE  # outcome reports, one key per lead
