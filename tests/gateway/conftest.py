from tests.redis_server import redis_server  # noqa: F401
