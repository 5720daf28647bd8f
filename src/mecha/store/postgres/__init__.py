"""The Store on PostgreSQL: ``open_postgres`` in ``store`` builds a ``PostgresStore``.

Mirrors ``mecha.store.sqlite`` module for module; psycopg is imported only here.
"""
