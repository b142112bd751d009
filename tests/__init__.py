import pytest

# tests.kafka_broker is both a pytest plugin and a module tests import; registering it here,
# before anything imports it, keeps pytest's assertion rewriting (and its warning) happy.
pytest.register_assert_rewrite("tests.kafka_broker")
