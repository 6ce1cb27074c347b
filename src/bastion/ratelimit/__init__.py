"""Rate limits per caller and per tool: rules from settings, a limiter (memory or Redis), the ASGI layer."""

from bastion.ratelimit.limiter import (
    MemoryRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    Refusal,
    build_rate_limiter,
)
from bastion.ratelimit.middleware import RATE_LIMITED_CODE, RateLimitMiddleware
from bastion.ratelimit.rules import Bucket, Limit, RateLimitRules, parse_limit

__all__ = [
    "RATE_LIMITED_CODE",
    "Bucket",
    "Limit",
    "MemoryRateLimiter",
    "RateLimitMiddleware",
    "RateLimitRules",
    "RateLimiter",
    "RedisRateLimiter",
    "Refusal",
    "build_rate_limiter",
    "parse_limit",
]
