"""Every PostgreSQL advisory-lock key ftq takes, in one place, so no two uses collide."""

from __future__ import annotations

from typing import Final

# Transaction-scoped, taken by `ftq migrate` (query `migrations_lock`): the two-int form
# pg_advisory_xact_lock(hashtext($1), hashtext($2)).
MIGRATIONS: Final = ("ftq", "schema_migrations")

# Session-scoped, held by the admission leader on its own connection: "ftqlead".
LEADER: Final = 0x66_74_71_6C_65_61_64

# Transaction-scoped admission gate (queries `admission_gate*`): shared by writers whose
# transition frees no slot, exclusive for the admission tick and slot-freeing writers: "ftq_adm".
ADMISSION_GATE: Final = 0x6674715F61646D

# Session-scoped, held by the one webhook deliverer of a database on its own connection: "ftqhook".
WEBHOOKS: Final = 0x66_74_71_68_6F_6F_6B
