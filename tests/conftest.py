"""Fixtures every test can use: the stores (tests.support.stores), the Tansu broker
(tests.support.broker), Kafka settings on it (tests.support.kafka), and the fact factory."""

from __future__ import annotations

import hypothesis
import pytest

from tests.support.facts import FactFactory
from tests.support.facts import fact as build_fact

pytest_plugins = ["tests.support.stores", "tests.support.broker", "tests.support.kafka"]

# Property tests explore the same examples on every run and never race a deadline: a CI
# failure then always reproduces, and a loaded machine cannot fail a correct test.
hypothesis.settings.register_profile("ledger", deadline=None, derandomize=True, database=None)
hypothesis.settings.load_profile("ledger")


@pytest.fixture
def fact() -> FactFactory:
    """tests.support.facts.fact: a valid fact of a type; keyword arguments override fields."""
    return build_fact
