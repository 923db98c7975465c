"""Several machines sharing one migration: the shared books in PostgreSQL (README, "Several machines")."""
