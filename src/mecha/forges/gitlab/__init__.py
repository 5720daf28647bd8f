"""GitLab: webhook parsing and tokens, merge request hydration, notes, suggestions and writes."""
