import pytest

# The support modules are pytest plugins and modules tests import; registering them here,
# before either imports them, gives their asserts pytest's rewriting.
pytest.register_assert_rewrite("tests.support")
