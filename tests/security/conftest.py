from tests.support.redis_server import own_redis, redis_server

__all__ = ["own_redis", "redis_server"]
