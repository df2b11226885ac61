from tests.redis_server import cluster, redis_server, sentinel_setup, tls_redis  # noqa: F401
