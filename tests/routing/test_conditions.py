"""Conditional-routing queries: operators, any-depth paths, and Portkey's bugs fixed."""

from __future__ import annotations

from typing import Any

import pytest

from fastgate.errors import GatewayError
from fastgate.routing.conditions import compile_query, query_roots

DOC: dict[str, Any] = {
    "metadata": {"plan": "pro", "tier": "3", "user": {"org": {"id": "acme"}}, "tags": ["a", "b"]},
    "params": {
        "model": "gpt-4o",
        "temperature": 0.2,
        "max_tokens": 100,
        "response_format": {"type": "json_object"},
        "messages": [{"role": "system", "content": "be brief"}],
    },
    "url": {"pathname": "/v1/chat/completions"},
}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"metadata.plan": "pro"}, True),
        ({"metadata.plan": "free"}, False),
        ({"metadata.plan": {"$eq": "pro"}}, True),
        ({"metadata.plan": {"$ne": "pro"}}, False),
        ({"metadata.missing": {"$ne": "pro"}}, True),
        ({"metadata.tier": {"$gt": 2}}, True),
        ({"metadata.tier": {"$gte": "3"}}, True),
        ({"metadata.tier": {"$lt": 3}}, False),
        ({"metadata.tier": {"$lte": 3}}, True),
        ({"params.temperature": {"$gt": 0.1, "$lt": 0.5}}, True),
        ({"params.temperature": {"$gt": 0.1, "$lt": 0.15}}, False),
        ({"params.model": {"$gt": 1}}, False),
        ({"params.model": {"$in": ["gpt-4o", "gpt-4o-mini"]}}, True),
        ({"params.model": {"$nin": ["gpt-4o"]}}, False),
        ({"metadata.missing": {"$nin": ["x"]}}, True),
        ({"metadata.missing": {"$in": ["x"]}}, False),
        ({"metadata.tags": {"$in": ["a"]}}, False),
        ({"params.model": {"$regex": "^gpt-4"}}, True),
        ({"params.model": {"$regex": "^claude"}}, False),
        ({"params.max_tokens": {"$regex": "1"}}, False),
        ({"metadata.plan": {"$exists": True}}, True),
        ({"metadata.nope": {"$exists": False}}, True),
        ({"metadata.nope": {"$exists": True}}, False),
        # Any depth (Portkey resolves only two levels).
        ({"metadata.user.org.id": "acme"}, True),
        ({"params.response_format.type": "json_object"}, True),
        ({"params.messages.0.role": "system"}, True),
        ({"params.messages.5.role": {"$exists": True}}, False),
        ({"url.pathname": {"$regex": "/chat/"}}, True),
        ({"metadata.plan.deeper": "x"}, False),
        # Every key must hold: Portkey lets $and/$or decide alone and ignores siblings.
        ({"$or": [{"metadata.plan": "pro"}, {"metadata.plan": "team"}], "params.model": "claude"}, False),
        ({"$and": [{"metadata.plan": "pro"}], "metadata.tier": "9"}, False),
        ({"$or": [{"metadata.plan": "free"}, {"params.model": "gpt-4o"}]}, True),
        (
            {"$and": [{"metadata.plan": "pro"}, {"$or": [{"metadata.tier": "1"}, {"metadata.tier": "3"}]}]},
            True,
        ),
        # All operators of one field must hold: Portkey stops at $regex.
        ({"params.model": {"$regex": "gpt", "$ne": "gpt-4o"}}, False),
        ({}, True),
    ],
)
def test_query(query: dict[str, Any], expected: bool) -> None:
    assert compile_query(query, "q")(DOC) is expected


@pytest.mark.parametrize(
    ("query", "where"),
    [
        ({"metadata.plan": {"$like": "x"}}, "q.metadata.plan.$like"),
        ({"$not": {}}, "q.$not"),
        ({"plan": "x"}, "q.plan"),
        ({"headers.x": "x"}, "q.headers.x"),
        ({"metadata.": "x"}, "q.metadata."),
        ({"metadata.x": {"$in": "abc"}}, "q.metadata.x.$in"),
        ({"metadata.x": {"$gt": "many"}}, "q.metadata.x.$gt"),
        ({"metadata.x": {"$regex": "("}}, "q.metadata.x.$regex"),
        ({"metadata.x": {"$exists": "yes"}}, "q.metadata.x.$exists"),
        ({"metadata.x": {"$eq": 1, "plain": 2}}, "q.metadata.x"),
        ({"$and": []}, "q.$and"),
        ({"$or": [{"metadata.x": {"$bad": 1}}]}, "q.$or[0].metadata.x.$bad"),
    ],
)
def test_bad_query_names_its_path(query: dict[str, Any], where: str) -> None:
    with pytest.raises(GatewayError) as info:
        compile_query(query, "q")
    assert info.value.status == 400
    assert info.value.param == where


def test_roots_read_by_a_query() -> None:
    query = {"metadata.a": 1, "$or": [{"params.model": "x"}, {"url.pathname": "/"}]}
    assert query_roots(query) == {"metadata", "params", "url"}
    assert query_roots({"metadata.a": 1}) == {"metadata"}
