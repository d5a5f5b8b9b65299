"""Typed application keys, declared in one place for every package that serves requests."""

from __future__ import annotations

import asyncio

import asyncpg
from aiohttp import web

from pocdojo.core.cache import PocCache
from pocdojo.core.jobqueue import JobQueue
from pocdojo.core.metrics import HttpMetrics
from pocdojo.core.objectstore import ObjectStore
from pocdojo.core.ports import LiveRooms
from pocdojo.core.ratelimit import RateLimiter
from pocdojo.core.redisclient import AnyRedis
from pocdojo.core.search import SearchEngine
from pocdojo.core.security import AccessTokens, ParticipantTokens, Passwords
from pocdojo.core.settings import Settings

settings_key = web.AppKey("settings", Settings)
# Set when the node starts stopping: /readyz answers 503 and new sockets are refused.
draining_key = web.AppKey("draining", asyncio.Event)
db_pool_key = web.AppKey("db_pool", asyncpg.Pool)
redis_key: web.AppKey[AnyRedis] = web.AppKey("redis")
passwords_key = web.AppKey("passwords", Passwords)
tokens_key = web.AppKey("tokens", AccessTokens)
limiter_key = web.AppKey("limiter", RateLimiter)
metrics_key = web.AppKey("metrics", HttpMetrics)
openapi_key = web.AppKey("openapi", dict)
search_key = web.AppKey("search", SearchEngine)
poc_cache_key = web.AppKey("poc_cache", PocCache)
participant_tokens_key = web.AppKey("participant_tokens", ParticipantTokens)
live_rooms_key = web.AppKey("live_rooms", LiveRooms)
object_store_key = web.AppKey("object_store", ObjectStore)
job_queue_key = web.AppKey("job_queue", JobQueue)
