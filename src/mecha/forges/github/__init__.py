"""GitHub: webhook parsing and signatures, pull request hydration, REST writes, auth and limits."""
