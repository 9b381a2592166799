"""The UI's session cookie (it carries the CSRF token): `Secure` whenever the page was served over
HTTPS, so that it never travels over plain HTTP afterwards.

Flask's SESSION_COOKIE_SECURE is one fixed value; set for good it would break the console served
over plain HTTP on another host than localhost (browsers keep no Secure cookie from an http:// page,
so every form would fail its CSRF check). Behind a TLS-terminating proxy the request is HTTPS when
the proxy is trusted (UI_TRUSTED_PROXY) and says so in X-Forwarded-Proto.
"""
from __future__ import annotations

from flask import Flask, has_request_context, request
from flask.sessions import SecureCookieSessionInterface


class SchemeAwareSessionInterface(SecureCookieSessionInterface):
    def get_cookie_secure(self, app: Flask) -> bool:
        # SESSION_COOKIE_SECURE=True still forces it (e.g. a proxy whose header is not trusted)
        return super().get_cookie_secure(app) or (has_request_context() and request.is_secure)
