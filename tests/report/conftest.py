"""Report fixtures: the serving fixtures (a real tiny exported model) are shared."""

from tests.serving.conftest import exported_model, images  # noqa: F401
