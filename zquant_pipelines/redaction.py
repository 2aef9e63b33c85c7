"""Credentials kept out of what we print: every URL in a text shown without its password.

One implementation for every URL the CLI and the operations print (the webserver's, a
gateway's, a database's or Redis's): ``scheme://user:password@host`` becomes
``scheme://user:***@host``; a user-info without a password (``https://TOKEN@host``, often
a token) is hidden whole. A URL may sit anywhere in the text, e.g. inside an exception's
message, so callers pass whole messages.
"""

import re

REDACTED = "***"

# scheme://user-info@ where user-info has no '/', '?', '#' or space; greedy, so a password
# holding '@' ends at the last '@' before the host, as urllib.parse.urlsplit reads it.
_USER_INFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user_info>[^/?#\s]*)@")


def redact_credentials(text: str) -> str:
    """``text`` with the password (or the lone user name) of every URL in it replaced."""

    def hide(match: re.Match) -> str:
        user, has_password, _ = match["user_info"].partition(":")
        shown = f"{user}:{REDACTED}" if has_password else REDACTED
        return f"{match['scheme']}{shown}@"

    return _USER_INFO.sub(hide, text)
