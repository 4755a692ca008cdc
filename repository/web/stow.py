"""stub"""
from starlette.requests import Request
from starlette.responses import Response
async def store_instances(request: Request) -> Response: ...
