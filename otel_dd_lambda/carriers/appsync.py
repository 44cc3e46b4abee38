"""AppSync resolvers: the client's HTTP headers are in ``request.headers``."""

from __future__ import annotations

from typing import Any, Dict, Optional


def headers(event: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    request = event.get("request")
    value = request.get("headers") if type(request) is dict else None
    return value if type(value) is dict and value else None
