from tests.redis_server import cluster, redis_server  # noqa: F401
