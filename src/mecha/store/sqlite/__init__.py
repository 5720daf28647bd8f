"""The SQLite store: one file, WAL, group commits; its migrations and statements per record kind."""
