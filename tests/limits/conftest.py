from tests.redis_server import cluster, redis_server, sentinel_setup  # noqa: F401
