"""Report fixtures: the serving fixtures (a real tiny exported model, sample images, two
served versions and the TF Serving stand-in) are shared."""

from tests.serving.conftest import exported_model, images, served_models, standin  # noqa: F401
