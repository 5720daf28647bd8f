"""The dashboard at ``/ui``: server-rendered pages over the store (Jinja2, autoescaped, every
text through the redactor), a login that turns the API key into a session cookie, a CSRF
token on every action, and live updates over server-sent events. It works without
JavaScript; ``static/ui/app.js`` only adds the live refresh and the theme switch."""
