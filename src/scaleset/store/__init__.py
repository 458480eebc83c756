"""Persistence: SQLAlchemy tables, Alembic migrations, and the repository the shell uses.

Exceptions: ``StoreError`` is the base; ``ConflictError`` means a guarded
write found the row changed under it (another writer, or a replayed step).
"""
