"""The dashboard served at ``/ui/``: sign-in, scale sets, a live rollout view, images.

* ``sessions`` — the browser session's rules: the cookie that carries the token, the
  CSRF value bound to it, the headers every page is sent with (a strict CSP).
* ``pages`` — the router: sign-in and sign-out, the server-rendered pages (Jinja2,
  ``templates/``) and their static assets (``static/``: CSS and vanilla JavaScript, no
  build step, nothing from another origin).

The pages read and act through the ARM API itself, with the session cookie as the
credential (``api/auth.py`` accepts it; a write also needs the CSRF header), so what a
page may do is exactly what the token may do.
"""
