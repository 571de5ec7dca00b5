from tests.support.redis_cluster import redis_cluster

__all__ = ["redis_cluster"]
